// SPDX-License-Identifier: MIT

package main

import (
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"
)

// spawnJoin: n goroutines that each call wg.Done; ns per goroutine from
// the first go statement until Wait returns.
func spawnJoin(o opts) {
	var wg sync.WaitGroup

	start := time.Now()
	wg.Add(o.n)
	for i := 0; i < o.n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	el := time.Since(start)
	emit("spawn_join_ns_per_g", float64(el.Nanoseconds())/float64(o.n), "ns")
	emit("spawn_join_threads", threads(), "threads")
}

// yield: two goroutines calling Gosched n/2 times each; ns per yield.
func yield(o opts) {
	var wg sync.WaitGroup
	per := o.n / 2

	start := time.Now()
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func() {
			for i := 0; i < per; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	emit("yield_ns_per_switch", float64(el.Nanoseconds())/float64(2*per), "ns")
}

// parked: n goroutines that each signal ready, then block receiving on
// one shared channel. Figures: seconds from the first go statement until
// every goroutine has signalled (so all are created, and each is at its
// receive); peak RSS; seconds from close until all have exited.
func parked(o opts) {
	var ready, exited sync.WaitGroup
	ch := make(chan int)

	start := time.Now()
	ready.Add(o.n)
	exited.Add(o.n)
	for i := 0; i < o.n; i++ {
		go func() {
			ready.Done()
			<-ch
			exited.Done()
		}()
	}
	ready.Wait()
	created := time.Since(start)
	start = time.Now()
	close(ch)
	exited.Wait()
	released := time.Since(start)
	emit("parked_create_s", created.Seconds(), "s")
	emit("parked_release_s", released.Seconds(), "s")
	emit("parked_rss_mb", maxRSSMB(), "MB")
	emit("parked_threads", threads(), "threads")
}

// chanRT: ping-pong over two unbuffered channels between the main
// goroutine and an echo goroutine; ns per round trip.
func chanRT(o opts) {
	ping, pong := make(chan int), make(chan int)
	done := make(chan struct{})

	go func() {
		for v := range ping {
			pong <- v
		}
		close(done)
	}()
	start := time.Now()
	for i := 0; i < o.n; i++ {
		ping <- i
		<-pong
	}
	el := time.Since(start)
	close(ping)
	<-done
	name := "chan_rt_p" + strconv.Itoa(o.p) + "_ns_per_rt"
	emit(name, float64(el.Nanoseconds())/float64(o.n), "ns")
}

// chanBuf: w producers send n/w items each into a channel of capacity c,
// w consumers drain it; million items per second, start to last receive.
func chanBuf(o opts) {
	var pw, cw sync.WaitGroup
	ch := make(chan int, o.c)
	per := o.n / o.w
	got := make([]int, o.w)

	start := time.Now()
	pw.Add(o.w)
	cw.Add(o.w)
	for j := 0; j < o.w; j++ {
		go func() {
			for i := 0; i < per; i++ {
				ch <- i
			}
			pw.Done()
		}()
		go func(j int) {
			n := 0
			for range ch {
				n++
			}
			got[j] = n
			cw.Done()
		}(j)
	}
	pw.Wait()
	close(ch)
	cw.Wait()
	el := time.Since(start)
	total := 0
	for _, n := range got {
		total += n
	}
	if total != per*o.w {
		die("chan_buf: received %d of %d items", total, per*o.w)
	}
	emit("chan_buf_mitems_per_s", float64(total)/el.Seconds()/1e6, "Mitems/s")
}

// timers: n goroutines each sleep once for a duration from min to max ms
// (the i-th: min + splitmix64(i) mod the range, in µs); lateness is the
// time slept beyond the duration.
func timers(o opts) {
	var wg sync.WaitGroup
	late := make([]int64, o.n)
	span := uint64(o.maxMs-o.minMs)*1000 + 1

	wg.Add(o.n)
	for i := 0; i < o.n; i++ {
		d := time.Duration(uint64(o.minMs)*1000+splitmix64(uint64(i))%span) *
			time.Microsecond
		go func(i int) {
			t0 := time.Now()
			time.Sleep(d)
			late[i] = int64(time.Since(t0) - d)
			wg.Done()
		}(i)
	}
	wg.Wait()
	slices.Sort(late)
	emit("timers_late_p50_us", float64(percentile(late, 50))/1e3, "us")
	emit("timers_late_p99_us", float64(percentile(late, 99))/1e3, "us")
	emit("timers_late_max_us", float64(late[len(late)-1])/1e3, "us")
}
