# rotini.hcl — gunicorn under rotini, with the code in a mounted volume
# (/srv/app): saving a file there starts a new generation of gunicorn on the
# new code, and the old one drains once the new one serves. A release that
# fails to import is refused and the old generation keeps serving.
# Every field and its default: config.hcl.example at the repository root.

listen "http" {
  # 0.0.0.0 inside the container; publish it with -p / ports:.
  address = "tcp://0.0.0.0:8000"
}

app "web" {
  # gunicorn takes the socket from LISTEN_FDS (rotini sets LISTEN_PID to
  # the pid of gunicorn's master) and forks its own 2 workers: rotini runs
  # one master per generation.
  command = ["gunicorn", "--workers", "2", "--chdir", "/srv/app",
             "--graceful-timeout", "20", "app:application"]
  workers = 1
  listen  = ["http"]
  env = {
    PYTHONDONTWRITEBYTECODE = "1" # no __pycache__ written into the volume
    PYTHONUNBUFFERED        = "1"
  }

  # docker stop sends STOPSIGNAL (SIGTERM) to rotini; rotini sends gunicorn
  # stop_signal and SIGKILLs it after stop_timeout; Docker SIGKILLs it all
  # after the container's grace period, 10s unless raised (compose.yaml
  # raises it with stop_grace_period: 30s; docker run --stop-timeout 30).
  #   gunicorn's graceful-timeout (20s) < stop_timeout (25s) < grace (30s)
  stop_signal  = "TERM"
  stop_timeout = "25s"

  # gunicorn's master says READY=1 before its workers import the app (and
  # exits 3 a moment later when the import fails), so also wait for an
  # answer of the new generation ("/" on a private probe socket that rotini
  # gives that generation only) and for 1s of uptime.
  ready {
    notify     = true
    http       = "/"
    min_uptime = "1s"
    timeout    = "60s"
  }

  # Reload on a change of the mounted code. poll = "auto" polls where
  # inotify sees nothing (Docker Desktop's bind mounts).
  watch {
    paths    = ["/srv/app"]
    exclude  = ["**/__pycache__/**", "**/*.pyc", ".git/**", "**/*.swp"]
    debounce = "500ms"
    poll     = "auto"
  }
}
