package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSpawn(t *testing.T) {
	src := `
listen "http" { address = "tcp://0.0.0.0:8000" }
listen "admin" { address = "unix:///run/admin.sock" }
app "web" {
  listen  = ["http", "admin"]
  command = ["uvicorn", "--fd", "${fd.http}", "--admin-fd", fd.admin, "--port", 8000 + worker, "--id=${generation}.${worker}", "main:app"]
  env = {
    GREETING = "hello ${env.USER}"
    SLOT     = worker
    FLAG     = true
  }
  dir = "${env.HOME}/app"
}
`
	cfg, diags := Parse([]byte(src), "spawn.hcl")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	argv, env, dir, err := cfg.Apps[0].Spawn(SpawnVars{
		FDs:        map[string]int{"http": 3, "admin": 4},
		Generation: 7,
		Worker:     2,
		Env:        map[string]string{"USER": "ann", "HOME": "/home/ann"},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantArgv := []string{"uvicorn", "--fd", "3", "--admin-fd", "4", "--port", "8002", "--id=7.2", "main:app"}
	if diff := cmp.Diff(wantArgv, argv); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
	wantEnv := []string{"FLAG=true", "GREETING=hello ann", "SLOT=2"}
	if diff := cmp.Diff(wantEnv, env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if dir != "/home/ann/app" {
		t.Errorf("dir = %q, want /home/ann/app", dir)
	}
}

func TestSpawnStatic(t *testing.T) {
	cfg, diags := Parse([]byte(`app "a" { command = ["sleep", 10] }`), "static.hcl")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	argv, env, dir, err := cfg.Apps[0].Spawn(SpawnVars{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"sleep", "10"}, argv); diff != "" || env != nil || dir != "" {
		t.Errorf("Spawn = %q, %q, %q; argv diff:\n%s", argv, env, dir, diff)
	}
}

// Which env names exist is only known at spawn; a missing one is an error
// that names its position in the file.
func TestSpawnMissingEnv(t *testing.T) {
	cfg, diags := Parse([]byte("app \"a\" {\n  command = [\"run\", env.TOKEN]\n}\n"), "env.hcl")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	_, _, _, err := cfg.Apps[0].Spawn(SpawnVars{Env: map[string]string{"HOME": "/"}})
	if err == nil || !strings.Contains(err.Error(), "env.hcl:2,") || !strings.Contains(err.Error(), "TOKEN") {
		t.Fatalf("Spawn error = %v, want one naming env.hcl:2 and TOKEN", err)
	}
}

// In proxy mode a worker gets its generation's ports: port.<name> in its
// command and env, and PORT (the first listener's) in its environment.
func TestSpawnProxy(t *testing.T) {
	src := `
listen "http" { address = "tcp://0.0.0.0:8000" }
listen "admin" { address = "tcp://127.0.0.1:9000" }
app "node" {
  listen  = ["http", "admin"]
  command = ["node", "server.js", "--admin", port.admin]
  env = {
    ADMIN_PORT = "${port.admin}"
    A          = "first"
    Z          = "last"
  }
  proxy {}
}
`
	cfg, diags := Parse([]byte(src), "proxy.hcl")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	argv, env, _, err := cfg.Apps[0].Spawn(SpawnVars{Ports: map[string]int{"http": 41000, "admin": 41001}, Generation: 3})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"node", "server.js", "--admin", "41001"}, argv); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"A=first", "ADMIN_PORT=41001", "PORT=41000", "Z=last"}, env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if _, _, _, err := cfg.Apps[0].Spawn(SpawnVars{Generation: 3}); err == nil {
		t.Error("Spawn without ports succeeded; it must say that the ports are missing")
	}
}
