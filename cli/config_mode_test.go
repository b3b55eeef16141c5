package cli

import (
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"golang.org/x/sys/unix"

	"github.com/rotini-dev/rotini/config"
	"github.com/rotini-dev/rotini/reload"
)

// Every field of a decoded config must reach an option of what rotini runs:
// a field that is parsed, documented and then ignored is a lie to the user.
// Each field is set in turn to a value other than the one it had, and what
// rotini builds from the config (app options, listener and control options,
// log settings, signal rewrites) must change with it. A field added to
// package config fails this test until it is wired to something.

const coverageConfig = `
listen "http" {
  address = "tcp://127.0.0.1:8000"
}
app "web" {
  command = ["server", "--fd", "${fd.http}", "${env.HOME}"]
  dir     = "/srv/${generation}"
  env     = { A = "a" }
  listen  = ["http"]
  workers = 2
  watch {
    paths = ["/srv"]
  }
}
`

func TestEveryConfigFieldReachesAnOption(t *testing.T) {
	base, diags := config.Parse([]byte(coverageConfig), "coverage.hcl")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	log := hclog.NewNullLogger()
	for i := 0; i < reflect.TypeOf(config.Config{}).NumField(); i++ {
		name := reflect.TypeOf(config.Config{}).Field(i).Name
		switch name {
		case "Filename":
			// The file itself: re-read on every reload, not an option.
		case "Apps":
			eachField(t, "App", reflect.ValueOf(&base.Apps[0]).Elem(), func() any {
				return appSnapshot(t, appOptions(base)[0])
			})
		case "Listeners":
			eachField(t, "Listener", reflect.ValueOf(&base.Listeners[0]).Elem(), func() any {
				return socketSpecs(base)[0]
			})
		case "Control":
			eachField(t, "Control", reflect.ValueOf(&base.Control).Elem(), func() any {
				o := controlOptions(log, "", base.Control, "")
				o.Log = nil
				return o
			})
		case "Log":
			eachField(t, "Log", reflect.ValueOf(&base.Log).Elem(), func() any {
				l, f := logSettings(&runOptions{}, base.Log)
				return [2]string{l, f}
			})
		case "Hold":
			t.Setenv("ROTINI_HOLD", "")
			before := holdSocket(base)
			base.Hold = "/run/elsewhere/hold.sock"
			if holdSocket(base) == before {
				t.Errorf("config.Config.Hold reaches no option")
			}
		case "Rewrite":
			before := mergeRewrites(nil, base.Rewrite)
			base.Rewrite = map[unix.Signal]unix.Signal{unix.SIGUSR1: unix.SIGUSR2}
			if reflect.DeepEqual(before, mergeRewrites(nil, base.Rewrite)) {
				t.Errorf("config.Config.Rewrite reaches no option")
			}
		default:
			t.Errorf("config.Config.%s: this test does not know what it should reach; wire it to an option and add it here", name)
		}
	}
}

// eachField changes each field of v in turn (recursing into structs) and
// checks that options() changes, then restores the field.
func eachField(t *testing.T, path string, v reflect.Value, options func() any) {
	t.Helper()
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), path+"."+v.Type().Field(i).Name
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Duration(0)) {
			eachField(t, name, f, options)
			continue
		}
		if f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct {
			// An optional block: adding it must change something, and then
			// so must each of its fields.
			before := options()
			saved := reflect.New(f.Type()).Elem()
			saved.Set(f)
			if f.IsNil() {
				f.Set(reflect.New(f.Type().Elem()))
			}
			if saved.IsNil() && reflect.DeepEqual(before, options()) {
				t.Errorf("config.%s reaches no option: adding it changes nothing rotini runs", name)
			}
			eachField(t, name, f.Elem(), options)
			f.Set(saved)
			continue
		}
		if v, ok := specialValues[v.Type().Field(i).Name]; ok {
			before := options()
			saved := reflect.New(f.Type()).Elem()
			saved.Set(f)
			f.Set(reflect.ValueOf(v))
			if reflect.DeepEqual(before, options()) {
				t.Errorf("config.%s reaches no option: changing it changes nothing rotini runs", name)
			}
			f.Set(saved)
			continue
		}
		before := options()
		saved := reflect.New(f.Type()).Elem()
		saved.Set(f)
		if !change(f, v.Type().Field(i).Name == "Command") {
			t.Errorf("config.%s: this test cannot change a %s; teach it", name, f.Type())
			continue
		}
		if reflect.DeepEqual(before, options()) {
			t.Errorf("config.%s reaches no option: changing it changes nothing rotini runs", name)
		}
		f.Set(saved)
	}
}

// specialValues are fields whose values are checked at load, so that a
// made-up value would be mapped to the default: they get a valid one.
var specialValues = map[string]any{"ProxyProtocol": "v2"}

// change sets f to a value different from the one it has; an expression
// becomes a list when it is one.
func change(f reflect.Value, list bool) bool {
	switch f.Type() {
	case reflect.TypeOf((*hcl.Expression)(nil)).Elem():
		if list {
			f.Set(reflect.ValueOf(mustExpr(`["changed", "${worker}"]`)))
		} else {
			f.Set(reflect.ValueOf(mustExpr(`"changed-${worker}"`)))
		}
		return true
	case reflect.TypeOf(map[string]hcl.Expression{}):
		f.Set(reflect.ValueOf(map[string]hcl.Expression{"CHANGED": mustExpr(`"yes"`)}))
		return true
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(f.String() + "-changed")
	case reflect.Bool:
		f.SetBool(!f.Bool())
	case reflect.Int, reflect.Int64:
		f.SetInt(f.Int() + 7)
	case reflect.Uint32:
		f.SetUint(f.Uint() ^ 0o7)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return false
		}
		f.Set(reflect.Append(f, reflect.ValueOf("changed")))
	default:
		return false
	}
	return true
}

func mustExpr(src string) hcl.Expression {
	e, diags := hclsyntax.ParseExpression([]byte(src), "change.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		panic(diags.Error())
	}
	return e
}

// appSnapshot is everything an app's options say, with the spawn function
// replaced by what it gives for a sample worker.
func appSnapshot(t *testing.T, o reload.AppOptions) any {
	argv, env, dir, err := o.Spawn(reload.SpawnVars{FDs: map[string]int{"http": 3}, Ports: map[string]int{"http": 20000}, Generation: 2, Worker: 1})
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	o.Spawn = nil
	return []any{o, argv, env, dir, os.Getenv("HOME")}
}
