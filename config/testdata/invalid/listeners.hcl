listen "http" {
  address = "http://0.0.0.0:8000" # ERROR: Invalid address scheme
}
listen "https" {
  address = "tcp://0.0.0.0:https" # ERROR: Invalid port
}
listen "big" {
  address = "tcp://0.0.0.0:70000" # ERROR: Invalid port
}
listen "sock" {
  address = "unix://run/app.sock" # ERROR: Relative unix socket path
}
listen "bare" {
  address = "0.0.0.0:8000" # ERROR: Invalid listen address
}
listen "v4" {
  address = "tcp4://[::1]:8000" # ERROR: Invalid listen address
}
listen "admin" {
  address = "tcp://127.0.0.1:9000"
  mode    = "0600" # ERROR: Argument only valid for unix sockets
  backlog = 0 # ERROR: Invalid backlog
}
listen "admin" { # ERROR: Duplicate listener name
  address = "tcp://127.0.0.1:9001"
}
listen "spare" { # WARNING: Unused listener
  address = "tcp://127.0.0.1:9002"
}
listen "nowhere" { # ERROR: Missing required argument
  backlog = 10
}
listen "ok" {
  address = "unix:///run/ok.sock"
  mode    = "0640"
}

app "web" {
  command = ["./server"]
  listen = [
    "http",
    "htp", # ERROR: Unknown listener
    "http", # ERROR: Duplicate listener
    "https",
    "big",
    "sock",
    "bare",
    "v4",
    "admin",
    "nowhere",
    "ok",
  ]
}

app "api" {
  command = ["./api"]
  listen  = ["ok"] # ERROR: Listener already used
}

app "one" {
  command = ["./one"]
  listen  = "ok" # ERROR: Invalid expression
}
