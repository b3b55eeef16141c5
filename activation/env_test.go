package activation

import (
	"slices"
	"testing"
)

// TestWorkerEnv: what rotini inherited of the protocols' variables never
// reaches a worker; each is the worker's own or gone, except LISTEN_PID
// beside listeners, which the shim replaces.
func TestWorkerEnv(t *testing.T) {
	inherited := []string{"PATH=/bin", "LISTEN_FDS=9", "LISTEN_FDNAMES=x", "LISTEN_PID=1", "NOTIFY_SOCKET=/run/systemd/notify", "HOME=/"}
	for _, c := range []struct {
		name      string
		listeners []string
		notify    string
		want      []string
	}{
		{"listeners and notify", []string{"http", "admin"}, "/run/rotini/1/web.sock",
			[]string{"PATH=/bin", "LISTEN_PID=1", "HOME=/", "LISTEN_FDS=2", "LISTEN_FDNAMES=http:admin", "NOTIFY_SOCKET=/run/rotini/1/web.sock"}},
		{"listeners only", []string{"http"}, "",
			[]string{"PATH=/bin", "LISTEN_PID=1", "HOME=/", "LISTEN_FDS=1", "LISTEN_FDNAMES=http"}},
		{"notify only", nil, "/run/rotini/1/web.sock",
			[]string{"PATH=/bin", "HOME=/", "NOTIFY_SOCKET=/run/rotini/1/web.sock"}},
		{"neither", nil, "", []string{"PATH=/bin", "HOME=/"}},
	} {
		env := slices.Clone(inherited)
		if got := WorkerEnv(env, c.listeners, c.notify); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
		if !slices.Equal(env, inherited) {
			t.Errorf("%s: the environment passed in was changed: %q", c.name, env)
		}
	}
}
