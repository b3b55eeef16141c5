# Proxy mode: one app with every proxy setting, one with the defaults.

listen "http" {
  address = "tcp://0.0.0.0:8000"
}

listen "admin" {
  address = "unix:///run/admin.sock"
}

listen "other" {
  address = "tcp://0.0.0.0:8080"
}

app "node" {
  command = ["node", "server.js", "--admin-port", "${port.admin}"]
  listen  = ["http", "admin"]
  env = {
    HTTP_PORT = port.http
  }
  proxy {
    proxy_protocol  = "v2"
    ports           = "20000-20999"
    max_connections = 500
    idle_timeout    = "30s"
    dial_timeout    = "1s"
  }
}

app "php" {
  command = ["php", "-S", "127.0.0.1:${port.other}"]
  listen  = ["other"]
  proxy {}
}
