listen "http" {
  address = "tcp://0.0.0.0:8000"
}
listen "admin" { # WARNING: Unused listener
  address = "tcp://127.0.0.1:9000"
}

app "web" {
  listen = ["http"]
  command = [
    "./server",
    "--fd=${fd.http}",
    "--fd=${fd.nope}", # ERROR: Unknown listener
    "--admin=${fd.admin}", # ERROR: Listener not in listen list
    "${bogus}", # ERROR: Unknown variable
    "--worker=${worker}",
    "--gen=${generation + 1}",
    "--home=${env.HOME}",
    "${fd}", # ERROR: Unsuitable value type
    upper("x"), # ERROR: Function calls not allowed
  ]
  env = {
    SLOT = "${worker}-${wroker}" # ERROR: Unknown variable
    OK   = fd.http
  }
  dir = "/srv/${app}" # ERROR: Unknown variable
}

app "empty" {
  command = [] # ERROR: Invalid command
}

app "string" {
  command = "./server --port 8000" # ERROR: Invalid command
}

app "static" {
  command = ["./server"]
  workers = worker # ERROR: Variables not allowed
}
