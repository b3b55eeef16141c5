listen "http" {
  address = "tcp://127.0.0.1:8000"
  port    = 8000 # ERROR: Unsupported argument
}

app "web" {
  command = ["./server"]
  listen  = ["http"]
  workers = "two" # ERROR: Unsuitable value type
  colour  = "blue" # ERROR: Unsupported argument
  log_prefix = "maybe" # ERROR: Unsuitable value type
  ready {
    notify = true
  }
  ready { # ERROR: Duplicate ready block
    notify = false
  }
}

app "web" { # ERROR: Duplicate app name
  command = ["./other"]
}

app "worker" { # ERROR: Missing required argument
  workers = 2
}

app "9lives" { # ERROR: Invalid app name
  command = ["./cat"]
}

app { # ERROR: Missing name for app
  command = ["./anonymous"]
}

proxy "front" { # ERROR: Unsupported block type
}

log {
  level = "debug"
}
log { # ERROR: Duplicate log block
  level = "info"
}
