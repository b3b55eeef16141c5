# Every field set to something other than its default, except app "jobs",
# which takes every default.

listen "http" {
  address = "tcp://0.0.0.0:8000"
}

listen "admin" {
  address = "tcp6://[::1]:9000"
  backlog = 64
}

listen "sock" {
  address = "unix:///run/app.sock"
  mode    = "0660"
  owner   = "www"
  group   = "www"
}

app "web" {
  command = ["gunicorn", "--bind", "fd://${fd.http}", "--workers", "1", "app:wsgi"]
  dir     = "/srv/app/current"
  workers = 4
  listen  = ["http", "admin"]
  env = {
    PYTHONUNBUFFERED = "1"
    WORKER_ID        = "${generation}-${worker}"
    "ADMIN_FD"       = fd.admin
  }
  user                  = "app"
  group                 = "app"
  stop_signal           = "SIGQUIT"
  stop_timeout          = "25s"
  reload                = "rotate"
  reload_signal         = "usr2"
  before_reload         = ["python", "-m", "compileall", "."]
  before_reload_timeout = "2m"
  restart_backoff       = "500ms"
  restart_backoff_max   = "1m"
  crash_limit           = 10
  crash_window          = "5m"
  batch                 = 2
  log_prefix            = true

  ready {
    notify     = true
    http       = "/healthz"
    tcp        = "127.0.0.1:8000"
    exec       = ["./check"]
    timeout    = "30s"
    min_uptime = "2s"
    interval   = "250ms"
  }

  watch {
    paths    = ["/srv/app"]
    exclude  = [".git/**", "**/__pycache__/**"]
    include  = ["**/*.py"]
    debounce = "1s"
    max_wait = "10s"
    trigger  = "/srv/app/restart.txt"
    poll     = "2s"
  }
}

app "jobs" {
  command = ["./jobs"]
}

app "nginx" {
  command     = ["nginx", "-g", "daemon off;"]
  listen      = ["sock"]
  reload      = "signal"
  stop_signal = 3
  crash_limit = 0
  watch {
    paths = ["/etc/nginx"]
    poll  = "off"
  }
}

log {
  level  = "debug"
  format = "json"
}

control {
  socket = "/tmp/rotini.sock"
  mode   = "0660"
  group  = "ops"
}

signals {
  rewrite = {
    TERM  = "QUIT"
    WINCH = "0"
  }
}
