package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// Client talks to a control socket. The zero value uses DefaultSocket.
type Client struct {
	Path string
}

// UnreachableError means the socket could not be connected to: it says
// where the client looked and how to point it elsewhere.
type UnreachableError struct {
	Path string
	Err  error
}

func (e *UnreachableError) Error() string {
	hint := "is rotini running with a config? set --control PATH or ROTINI_CONTROL"
	if errors.Is(e.Err, syscall.EACCES) || errors.Is(e.Err, syscall.EPERM) {
		hint = "run as the socket's owner or a member of its group (config control { group }), or set --control PATH or ROTINI_CONTROL"
	}
	reason := e.Err.Error()
	var errno syscall.Errno
	if errors.As(e.Err, &errno) {
		reason = errno.Error()
	}
	return fmt.Sprintf("cannot reach rotini at %s: %s (%s)", e.Path, reason, hint)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// APIError is an error answer of the API.
type APIError struct {
	Status  int // HTTP status
	Message string
}

func (e *APIError) Error() string { return e.Message }

func (c *Client) path() string {
	if c.Path == "" {
		return DefaultSocket
	}
	return c.Path
}

func (c *Client) do(ctx context.Context, method, endpoint string, q url.Values) (*http.Response, error) {
	path := c.path()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
	u := url.URL{Scheme: "http", Host: "rotini", Path: "/v1/" + endpoint, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, &UnreachableError{Path: path, Err: op.Err}
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("rotini at %s: %w", path, err)
	}
	return resp, nil
}

// decode reads resp's JSON body into v when its status is one of ok, and
// returns an *APIError otherwise.
func decode(resp *http.Response, v any, ok ...int) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	for _, code := range ok {
		if resp.StatusCode == code {
			if v == nil {
				return nil
			}
			if err := json.Unmarshal(body, v); err != nil {
				return fmt.Errorf("bad answer from rotini (%s): %w", resp.Status, err)
			}
			return nil
		}
	}
	var e apiError
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("unexpected answer %s", resp.Status)
	}
	return &APIError{Status: resp.StatusCode, Message: e.Error}
}

// StatusJSON returns GET /v1/status as it came.
func (c *Client) StatusJSON(ctx context.Context) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "status", nil)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := decode(resp, &raw, http.StatusOK); err != nil {
		return nil, err
	}
	return raw, nil
}

// Status returns rotini's apps, generations, workers and listeners.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	raw, err := c.StatusJSON(ctx)
	if err != nil {
		return nil, err
	}
	var st Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("bad status from rotini: %w", err)
	}
	return &st, nil
}

// Health reports whether every app has a ready serving generation.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	resp, err := c.do(ctx, http.MethodGet, "health", nil)
	if err != nil {
		return h, err
	}
	err = decode(resp, &h, http.StatusOK, http.StatusServiceUnavailable)
	return h, err
}

// Scale sets the worker count of app, or of every app when app is "".
func (c *Client) Scale(ctx context.Context, app string, workers int) error {
	q := url.Values{"workers": {strconv.Itoa(workers)}}
	if app != "" {
		q.Set("app", app)
	}
	resp, err := c.do(ctx, http.MethodPost, "scale", q)
	if err != nil {
		return err
	}
	return decode(resp, nil, http.StatusOK)
}

// Stop asks rotini to stop gracefully, as TERM does.
func (c *Client) Stop(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodPost, "stop", nil)
	if err != nil {
		return err
	}
	return decode(resp, nil, http.StatusAccepted)
}

// Reload asks for a reload of apps (every app when empty) and returns once
// it is accepted.
func (c *Client) Reload(ctx context.Context, apps []string) error {
	resp, err := c.do(ctx, http.MethodPost, "reload", url.Values{"app": apps})
	if err != nil {
		return err
	}
	return decode(resp, nil, http.StatusAccepted)
}

// ReloadWait reloads apps (every app when empty) and waits, at most
// timeout, for each app's result, calling progress (if not nil) with each
// step as it comes. The reload succeeded when every Result is OK and the
// error is nil; an error with results means the wait ended early (timeout,
// or the connection broke), not that the reload stopped.
func (c *Client) ReloadWait(ctx context.Context, apps []string, timeout time.Duration, progress func(Event)) ([]Result, error) {
	q := url.Values{"app": apps, "wait": {"1"}}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	resp, err := c.do(ctx, http.MethodPost, "reload", q)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, decode(resp, nil)
	}
	defer resp.Body.Close()
	var results []Result
	var waitErr error
	done := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return results, fmt.Errorf("bad line from rotini: %w", err)
		}
		switch {
		case l.Event != nil:
			if progress != nil {
				progress(*l.Event)
			}
		case l.Result != nil:
			results = append(results, *l.Result)
		case l.Error != "":
			waitErr = errors.New(l.Error)
		case l.Done != nil:
			done = true
		}
	}
	switch {
	case waitErr != nil:
		return results, waitErr
	case ctx.Err() != nil:
		return results, fmt.Errorf("stopped waiting: %w; the reload goes on in rotini", ctx.Err())
	case sc.Err() != nil:
		return results, fmt.Errorf("connection to rotini broke: %w", sc.Err())
	case !done:
		return results, errors.New("rotini ended the answer before the reload finished (is it stopping?)")
	}
	return results, nil
}
