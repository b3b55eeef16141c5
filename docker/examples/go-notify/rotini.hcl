# rotini.hcl — the Go example: two workers of /app on one socket that rotini
# owns, ready when each says READY=1 (sd_notify), reloaded by
# `docker kill --signal=HUP CONTAINER` or `docker exec CONTAINER rotini reload --wait`.
# Every field and its default: config.hcl.example at the repository root.

listen "http" {
  # 0.0.0.0 inside the container; publish it with -p / ports:.
  address = "tcp://0.0.0.0:8000"
}

app "web" {
  command = ["/app"]
  workers = 2
  listen  = ["http"]

  # docker stop sends STOPSIGNAL (SIGTERM) to rotini; rotini sends each
  # worker stop_signal and SIGKILLs it after stop_timeout. Docker SIGKILLs
  # everything after its own grace period: 10s by default (docker stop -t,
  # docker run --stop-timeout, compose stop_grace_period). So:
  #   app's drain (6s) < stop_timeout (8s) < Docker's grace (10s).
  stop_signal  = "TERM"
  stop_timeout = "8s"

  # A new generation serves only when every worker said READY=1 and stayed
  # up 1s; otherwise the reload is rolled back and the old one keeps serving.
  ready {
    notify     = true
    min_uptime = "1s"
    timeout    = "30s"
  }
}

# `rotini reload`, `rotini status` and `rotini health` (the HEALTHCHECK) talk
# to rotini over its control socket, /run/rotini/rotini.sock by default.
