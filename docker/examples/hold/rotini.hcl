# The app container's config: the same as without a holder, plus `hold {}`
# (the socket defaults to /run/rotini/hold.sock, on the shared volume).
hold {}

listen "http" {
  address = "tcp://0.0.0.0:8000"
}

app "web" {
  command = ["/app/server"]
  workers = 2
  listen  = ["http"]
  ready {
    notify = true
  }
}
