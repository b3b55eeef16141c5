# The documented example config (README), verbatim: the contract of config names.
listen "http" {
  address = "tcp://0.0.0.0:8000"      # or unix:///run/app.sock
}

app "web" {
  command      = ["uvicorn", "--fd", "${fd.http}", "main:app"]
  dir          = "/srv/app/current"
  workers      = 2
  listen       = ["http"]
  stop_signal  = "TERM"
  stop_timeout = "25s"
  ready {
    notify  = false
    http    = ""        # probe URL, when the app exposes one per worker
    timeout = "60s"
  }
  watch {
    paths    = ["/srv/app"]
    exclude  = [".git/**", "**/__pycache__/**"]
    debounce = "500ms"
    trigger  = ""       # reload only when this file changes (touch restart.txt)
  }
}
