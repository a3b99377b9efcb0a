// SPDX-License-Identifier: MIT

// Command gobench is the Go peer of kgo's benchmarks (selftests/bench/*.c):
// the same workloads, the same arguments, the same output, so that
// selftests/bench/run can put the two side by side.
//
//	gobench BENCH [-p procs] [-n count] [-w workers] [-c cap]
//	        [-m min_ms] [-M max_ms] [-s stack_bytes]
//
// Each bench prints lines "name value unit" on stdout, one figure a line.
// -s exists only so that both take the same arguments: Go grows its
// stacks and has no per-goroutine stack size.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
)

type opts struct {
	p, n, w, c int
	minMs      int
	maxMs      int
	stack      int
	dl, port   int // httpd: read deadline (ms, 0 none), port
}

type bench struct {
	run  func(o opts)
	defs opts
}

// The defaults are the workloads of DESIGN.md; bench.h has the same.
var benches = map[string]bench{
	"spawn_join": {spawnJoin, opts{p: 2, n: 1000000}},
	"yield":      {yield, opts{p: 1, n: 10000000}},
	"parked":     {parked, opts{p: 2, n: 1000000}},
	"chan_rt":    {chanRT, opts{p: 1, n: 1000000}},
	"chan_buf":   {chanBuf, opts{p: 2, n: 10000000, w: 4, c: 1024}},
	"timers":     {timers, opts{p: 2, n: 100000, minMs: 1, maxMs: 10}},
}

func usage() {
	names := make([]string, 0, len(benches))
	for k := range benches {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: gobench BENCH [-p procs] [-n count] "+
		"[-w workers] [-c cap] [-m min_ms] [-M max_ms] [-s stack]\n"+
		"benches: %v\n", names)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	b, ok := benches[os.Args[1]]
	if !ok {
		usage()
	}
	o := b.defs
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	fs.IntVar(&o.p, "p", o.p, "GOMAXPROCS")
	fs.IntVar(&o.n, "n", o.n, "count (goroutines, items, round trips)")
	fs.IntVar(&o.w, "w", o.w, "producers and consumers each")
	fs.IntVar(&o.c, "c", o.c, "channel capacity")
	fs.IntVar(&o.minMs, "m", o.minMs, "shortest sleep, ms")
	fs.IntVar(&o.maxMs, "M", o.maxMs, "longest sleep, ms")
	fs.IntVar(&o.stack, "s", 0, "ignored (kgo's stack size)")
	fs.IntVar(&o.dl, "d", o.dl, "httpd: read deadline, ms (0: none)")
	fs.IntVar(&o.port, "port", o.port, "httpd: port (0: any free one)")
	fs.Parse(os.Args[2:])
	if o.p < 1 || o.n < 1 {
		usage()
	}
	runtime.GOMAXPROCS(o.p)
	b.run(o)
}

// emit prints one figure.
func emit(name string, value float64, unit string) {
	fmt.Printf("%s %.6g %s\n", name, value, unit)
}

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "gobench: "+format+"\n", a...)
	os.Exit(1)
}
