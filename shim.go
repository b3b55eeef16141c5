package main

import "github.com/rotini-dev/rotini/reload"

// execShimIfAsked runs the worker shim (see package reload) when this process
// is one; it must come before anything else in main.
func execShimIfAsked() { reload.ExecShimIfAsked() }
