// SPDX-License-Identifier: MIT

package main

// The Go peers of handoff.c, spin_timer.c, syscall.c and sysmon_cpu.c:
// syscalls, sysmon and preemption.

import (
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func init() {
	benches["handoff"] = bench{handoff, opts{p: 1, n: 500}}
	benches["spin_timer"] = bench{spinTimer, opts{p: 1, n: 200}}
	benches["syscall"] = bench{syscallPath, opts{p: 1, n: 2000000}}
	benches["sysmon_cpu"] = bench{sysmonCPU, opts{p: 2, n: 10000, w: 8}}
}

var monoBase = time.Now()

func mono() int64 { return int64(time.Since(monoBase)) }

// handoff: the main goroutine starts one (to runnext, behind it) and
// blocks in read(2) on an empty pipe; the other runs once sysmon has
// retaken the P, notes the time and writes the pipe.
func handoff(o opts) {
	var fds [2]int
	var tRun atomic.Int64
	buf := make([]byte, 1)

	if err := syscall.Pipe(fds[:]); err != nil {
		die("handoff: pipe: %v", err)
	}
	lat := make([]int64, o.n)
	for i := 0; i < o.n; i++ {
		go func() {
			tRun.Store(mono())
			syscall.Write(fds[1], []byte{'x'})
		}()
		t0 := mono()
		if n, err := syscall.Read(fds[0], buf); n != 1 || err != nil {
			die("handoff: read: %v", err)
		}
		lat[i] = tRun.Load() - t0
	}
	slices.Sort(lat)
	emit("handoff_p50_us", float64(percentile(lat, 50))/1e3, "us")
	emit("handoff_p99_us", float64(percentile(lat, 99))/1e3, "us")
	emit("handoff_max_us", float64(lat[o.n-1])/1e3, "us")
}

var sink uint64

// spinTimer: 1 ms sleeps while a goroutine spins with no call at all.
func spinTimer(o opts) {
	var stop atomic.Int32

	go func() {
		var x uint64
		for stop.Load() == 0 {
			x++
		}
		sink = x
	}()
	time.Sleep(0) // let it start
	late := make([]int64, o.n)
	for i := 0; i < o.n; i++ {
		t0 := mono()
		time.Sleep(time.Millisecond)
		late[i] = mono() - t0 - int64(time.Millisecond)
	}
	stop.Store(1)
	slices.Sort(late)
	emit("spin_timer_late_p50_us", float64(percentile(late, 50))/1e3, "us")
	emit("spin_timer_late_p99_us", float64(percentile(late, 99))/1e3, "us")
	emit("spin_timer_late_max_us", float64(late[o.n-1])/1e3, "us")
}

// syscallPath: getpid through Syscall (entersyscall/exitsyscall) and
// RawSyscall (neither).
func syscallPath(o opts) {
	var sum uintptr

	t0 := mono()
	for i := 0; i < o.n; i++ {
		r, _, _ := syscall.Syscall(syscall.SYS_GETPID, 0, 0, 0)
		sum += r
	}
	t1 := mono()
	for i := 0; i < o.n; i++ {
		r, _, _ := syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
		sum += r
	}
	t2 := mono()
	if sum != uintptr(2*o.n*os.Getpid()) {
		die("syscall: wrong results")
	}
	emit("getpid_entersyscall_ns", float64(t1-t0)/float64(o.n), "ns")
	emit("getpid_raw_ns", float64(t2-t1)/float64(o.n), "ns")
}

// threadCPU is the CPU time of thread tid in ns, from schedstat.
func threadCPU(tid int) int64 {
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/schedstat")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return -1
	}
	return ns
}

// sysmonTid: Go's sysmon is the first thread the runtime starts
// (runtime.main calls newm(sysmon) before anything else makes one), so
// it has the lowest thread id after the main thread's.
func sysmonTid() int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return -1
	}
	var tids []int
	for _, e := range ents {
		if t, err := strconv.Atoi(e.Name()); err == nil && t != os.Getpid() {
			tids = append(tids, t)
		}
	}
	if len(tids) == 0 {
		return -1
	}
	sort.Ints(tids)
	return tids[0]
}

func procCPU() int64 {
	var ru syscall.Rusage

	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return (ru.Utime.Sec+ru.Stime.Sec)*1e9 + (ru.Utime.Usec+ru.Stime.Usec)*1e3
}

// sysmonCPU: o.w goroutines each loop o.n times over nanosleep(50 us)
// and getppid, both real syscalls (entersyscall), so that sysmon keeps
// finding Ps in syscalls.
func sysmonCPU(o opts) {
	var wg sync.WaitGroup

	if o.w < 1 {
		usage()
	}
	tid := sysmonTid()
	if tid < 0 {
		die("sysmon_cpu: cannot find sysmon's thread")
	}
	s0, p0, t0 := threadCPU(tid), procCPU(), mono()
	wg.Add(o.w)
	for g := 0; g < o.w; g++ {
		go func() {
			ts := syscall.Timespec{Nsec: 50000}
			for i := 0; i < o.n; i++ {
				syscall.Nanosleep(&ts, nil)
				syscall.Syscall(syscall.SYS_GETPPID, 0, 0, 0)
			}
			wg.Done()
		}()
	}
	wg.Wait()
	s1, p1, t1 := threadCPU(tid), procCPU(), mono()
	emit("sysmon_cpu_ms", float64(s1-s0)/1e6, "ms")
	emit("sysmon_cpu_pct", 100*float64(s1-s0)/float64(t1-t0), "%")
	emit("proc_cpu_ms", float64(p1-p0)/1e6, "ms")
	emit("wall_ms", float64(t1-t0)/1e6, "ms")
	emit("threads", threads(), "threads")
}
