app "web" {
  command      = ["./server"]
  workers      = 0 # ERROR: Invalid worker count
  stop_signal  = "TERMINATE" # ERROR: Unknown signal
  reload_signal = "99" # ERROR: Unknown signal
  stop_timeout = "25x" # ERROR: Invalid duration
  crash_window = "0s" # ERROR: Invalid duration
  before_reload_timeout = "-1s" # ERROR: Invalid duration
  restart_backoff = "10s"
  restart_backoff_max = "5s" # ERROR: Invalid duration
  reload       = "reboot" # ERROR: Invalid reload mode
  crash_limit  = -1 # ERROR: Invalid crash limit
  batch        = -2 # ERROR: Invalid batch size
  dir          = ["/srv"] # ERROR: Unsuitable value type
  command_env  = 1 # ERROR: Unsupported argument
  env = {
    LISTEN_PID = "1" # ERROR: Reserved environment variable
    PORT       = "8000"
    PORT       = "8001" # ERROR: Duplicate environment variable
  }
  ready {
    timeout  = "forever" # ERROR: Invalid duration
    http     = "localhost:8000/health" # ERROR: Invalid probe URL
    tcp      = "127.0.0.1" # ERROR: Invalid probe address
    interval = 5 # ERROR: Invalid duration
  }
  watch {
    paths   = ["/srv/app"]
    exclude = ["[oops"] # ERROR: Invalid glob pattern
    debounce = "10s"
    max_wait = "1s" # ERROR: Invalid duration
    poll     = "sometimes" # ERROR: Invalid poll setting
  }
}

app "jobs" {
  command = ["./jobs"]
  workers = null
  watch { # ERROR: Missing required argument
    debounce = "1s"
  }
}

app "many" {
  command = ["./many"]
  workers = 100000 # ERROR: Too many workers
}

log {
  level  = "loud" # ERROR: Invalid log level
  format = "xml" # ERROR: Invalid log format
}

control {
  socket = "rotini.sock" # ERROR: Relative unix socket path
  mode   = "rw-------" # ERROR: Invalid file mode
}

signals {
  rewrite = {
    TERM = "QUIT"
    BOGUS = "TERM" # ERROR: Unknown signal
    INT = "0"
    HUP = "NOPE" # ERROR: Unknown signal
  }
}
