package main

import "github.com/rotini-dev/rotini/activation"

// execShimIfAsked runs the worker shim (see package activation) when this process
// is one; it must come before anything else in main.
func execShimIfAsked() { activation.ExecShimIfAsked() }
