listen "http" {
  address = "tcp://0.0.0.0:8000"
}
listen "admin" {
  address = "tcp://127.0.0.1:9000"
}
listen "spare" {
  address = "tcp://127.0.0.1:9001"
}

app "web" {
  command = [
    "./server",
    "--fd=${fd.http}", # ERROR: No fd in proxy mode
    "--port=${port.http}",
    "--admin=${port.admin}", # ERROR: Listener not in listen list
    "--nope=${port.nope}", # ERROR: Unknown listener
  ]
  listen = ["http"]
  env = {
    PORT = "8000" # ERROR: Reserved environment variable
  }
  proxy {
    proxy_protocol  = "v3" # ERROR: Invalid PROXY protocol version
    ports           = "30000-20000" # ERROR: Invalid port range
    max_connections = 0 # ERROR: Invalid connection limit
    idle_timeout    = "0s" # ERROR: Invalid duration
    dial_timeout    = "soon" # ERROR: Invalid duration
    proxy_procotol  = "v1" # ERROR: Unsupported argument
  }
}

app "small" {
  command = ["./server"]
  listen  = ["admin", "spare"]
  proxy {
    ports = "20000-20002" # ERROR: Port range too small
  }
}

app "plain" {
  command = ["./server", "${port.http}"] # ERROR: No port without a proxy block
}

app "nolisten" {
  command = ["./server"]
  proxy { # ERROR: Proxy without listeners
  }
}

app "twice" {
  command = ["./server"]
  proxy {}
  proxy {} # ERROR: Duplicate proxy block
}
