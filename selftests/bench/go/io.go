// SPDX-License-Identifier: MIT

package main

// The Go peers of io_pread.c, io_direct.c, io_slowfs.c, io_echo.c and
// io_wake.c: file and network I/O. Go reads regular files with a
// blocking pread in entersyscall/exitsyscall (an M per waiting
// goroutine, handed off by sysmon), and sockets, pipes and timerfds
// through its netpoller (epoll).

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

func init() {
	benches["io_pread"] = bench{ioPread, opts{p: 2, n: 2000000, w: 256}}
	benches["io_direct"] = bench{ioDirect, opts{p: 2, n: 200000, w: 128}}
	benches["io_slowfs"] = bench{ioSlowfs, opts{p: 2, n: 40000, w: 1000}}
	benches["io_echo"] = bench{ioEcho, opts{p: 2, n: 200000, w: 1000}}
	benches["io_wake"] = bench{ioWake, opts{p: 2, n: 300}}
}

// threadSampler keeps the peak of the process's threads (Go has no
// io-wq workers: every thread is its own), sampled every 2 ms.
type threadSampler struct {
	stop chan struct{}
	done chan struct{}
	max  int64
}

func startSampler() *threadSampler {
	s := &threadSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			if t := procStatus("Threads"); t > s.max {
				s.max = t
			}
			select {
			case <-s.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *threadSampler) end() int64 {
	close(s.stop)
	<-s.done
	return s.max
}

func benchDir() string {
	if d := os.Getenv("KGO_BENCH_DIR"); d != "" {
		return d
	}
	return "/var/tmp"
}

// benchFile makes the data file of io_bench.h's bench_file (the same
// size at the same path; the contents do not matter).
func benchFile(path string, size int64) {
	if st, err := os.Stat(path); err == nil && st.Size() == size {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		die("%v", err)
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		for i := 0; i < len(buf); i += 8 {
			v := splitmix64(uint64(off) + uint64(i))
			for k := 0; k < 8; k++ {
				buf[i+k] = byte(v >> (8 * k))
			}
		}
		if _, err := f.Write(buf); err != nil {
			die("%v", err)
		}
	}
	f.Sync()
	f.Close()
}

// randomReads: o.w goroutines make o.n reads of 4 KiB in all at random
// aligned offsets of f (size bytes); aligned buffers (for O_DIRECT).
func randomReads(o opts, f *os.File, size int64) (float64, int64) {
	var wg sync.WaitGroup
	var bad atomic.Int64
	per := o.n / o.w
	blocks := uint64(size / 4096)

	s := startSampler()
	start := time.Now()
	for g := 0; g < o.w; g++ {
		wg.Add(1)
		go func(id uint64) {
			defer wg.Done()
			raw := make([]byte, 8192)
			skip := int((4096 - uintptr(unsafe.Pointer(&raw[0]))%4096) % 4096)
			buf := raw[skip : skip+4096]
			seed := id * 0x9e3779b97f4a7c15
			for i := 0; i < per; i++ {
				off := int64(splitmix64(seed+uint64(i))%blocks) * 4096
				if n, err := f.ReadAt(buf, off); n != 4096 || err != nil {
					bad.Add(1)
				}
			}
		}(uint64(g + 1))
	}
	wg.Wait()
	el := time.Since(start)
	thr := s.end()
	if bad.Load() != 0 {
		die("%d failed reads", bad.Load())
	}
	return float64(per*o.w) / el.Seconds(), thr
}

// ioPread: page-cached 4 KiB random reads of a 64 MiB file.
func ioPread(o opts) {
	path := filepath.Join(benchDir(), "kgo-bench-64m.dat")
	benchFile(path, 64<<20)
	f, err := os.Open(path)
	if err != nil {
		die("%v", err)
	}
	io.Copy(io.Discard, f) // into the page cache
	rate, thr := randomReads(o, f, 64<<20)
	emit("pread_reads_per_s", rate, "reads/s")
	emit("pread_threads", float64(thr), "threads")
	emit("pread_iowq_workers", 0, "threads")
}

// ioDirect: O_DIRECT 4 KiB random reads of a 512 MiB file.
func ioDirect(o opts) {
	path := filepath.Join(benchDir(), "kgo-bench-512m.dat")
	benchFile(path, 512<<20)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		die("%v", err)
	}
	rate, thr := randomReads(o, f, 512<<20)
	emit("direct_iops", rate, "IOPS")
	emit("direct_threads", float64(thr), "threads")
	emit("direct_iowq_workers", 0, "threads")
}

// slowfsByte is slowfs.h's slowfs_byte.
func slowfsByte(file, off uint64) byte {
	x := off*0x9e3779b97f4a7c15 + file*0x632be59bd9b4e019
	return byte(x>>56) ^ byte(off>>12)
}

// mountSlowfs starts selftests/slowfs as slowfs.h's slowfs_start does;
// the returned function unmounts it.
func mountSlowfs(latencyUs, nfiles int, size int64) (string, func()) {
	bin := os.Getenv("KGO_SLOWFS")
	if bin == "" {
		exe, _ := os.Executable()
		bin = filepath.Join(filepath.Dir(exe), "..", "selftests", "slowfs")
	}
	dir, err := os.MkdirTemp("/tmp", "kgo-slowfs.")
	if err != nil {
		die("%v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		die("%v", err)
	}
	cmd := exec.Command(bin, "-l", fmt.Sprint(latencyUs), "-n",
		fmt.Sprint(nfiles), "-s", fmt.Sprint(size), "-r", "3", dir)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		die("slowfs: %v", err)
	}
	w.Close()
	b := make([]byte, 1)
	if n, _ := r.Read(b); n != 1 {
		cmd.Process.Kill()
		cmd.Wait()
		os.Remove(dir)
		die("mounting slowfs failed")
	}
	r.Close()
	return dir, func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		syscall.Unmount(dir, syscall.MNT_DETACH)
		os.Remove(dir)
	}
}

// ioSlowfs: o.w goroutines read 4 KiB blocks of a FUSE file system that
// answers each read after 1 ms.
func ioSlowfs(o opts) {
	const nfiles = 16
	const size = 1 << 20
	dir, unmount := mountSlowfs(1000, nfiles, size)
	defer unmount()
	var wg sync.WaitGroup
	var bad atomic.Int64
	per := o.n / o.w

	s := startSampler()
	start := time.Now()
	for g := 0; g < o.w; g++ {
		wg.Add(1)
		go func(id uint64) {
			defer wg.Done()
			file := id % nfiles
			f, err := os.Open(filepath.Join(dir, fmt.Sprintf("f%d", file)))
			if err != nil {
				bad.Add(1)
				return
			}
			defer f.Close()
			buf := make([]byte, 4096)
			seed := id * 0x9e3779b97f4a7c15
			for i := 0; i < per; i++ {
				off := int64(splitmix64(seed+uint64(i))%(size/4096)) * 4096
				if n, err := f.ReadAt(buf, off); n != 4096 || err != nil {
					bad.Add(1)
					continue
				}
				for k := 0; k < 4096; k += 509 {
					if buf[k] != slowfsByte(file, uint64(off)+uint64(k)) {
						bad.Add(1)
					}
				}
			}
		}(uint64(g + 1))
	}
	wg.Wait()
	el := time.Since(start)
	thr := s.end()
	if bad.Load() != 0 {
		die("%d bad reads", bad.Load())
	}
	emit("slowfs_reads_per_s", float64(per*o.w)/el.Seconds(), "reads/s")
	emit("slowfs_threads", float64(thr), "threads")
	emit("slowfs_iowq_workers", 0, "threads")
}

// ioEcho: a TCP echo server and o.w clients over loopback, o.n round
// trips of 64 bytes in all.
func ioEcho(o opts) {
	const msg = 64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		die("%v", err)
	}
	go func() {
		for i := 0; i < o.w; i++ {
			c, err := ln.Accept()
			if err != nil {
				die("%v", err)
			}
			go func(c net.Conn) {
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						break
					}
					if _, err := c.Write(buf[:n]); err != nil {
						break
					}
				}
				c.Close()
			}(c)
		}
	}()
	var wg sync.WaitGroup
	var bad atomic.Int64
	per := o.n / o.w
	s := startSampler()
	start := time.Now()
	for g := 0; g < o.w; g++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				die("%v", err)
			}
			defer c.Close()
			out := make([]byte, msg)
			in := make([]byte, msg)
			for i := range out {
				out[i] = byte(id)
			}
			for i := 0; i < per; i++ {
				if _, err := c.Write(out); err != nil {
					bad.Add(1)
					return
				}
				if _, err := io.ReadFull(c, in); err != nil {
					bad.Add(1)
					return
				}
				if string(in) != string(out) {
					bad.Add(1)
				}
			}
		}(g + 1)
	}
	wg.Wait()
	el := time.Since(start)
	thr := s.end()
	if bad.Load() != 0 {
		die("%d bad round trips", bad.Load())
	}
	emit("echo_req_per_s", float64(per*o.w)/el.Seconds(), "req/s")
	emit("echo_threads", float64(thr), "threads")
	emit("echo_iowq_workers", 0, "threads")
}

// ioWake: completion-to-running latency through the netpoller, as
// io_wake.c: a timerfd expiring 0.5 ms after arming, read by a goroutine
// that has just started a 3 ms spinner.
func ioWake(o opts) {
	const spin = 3 * time.Millisecond
	const expire = 500 * time.Microsecond
	fd, _, e := syscall.Syscall(syscall.SYS_TIMERFD_CREATE,
		1 /* CLOCK_MONOTONIC */, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		die("timerfd_create: %v", e)
	}
	tf := os.NewFile(fd, "timerfd") // non-blocking: the netpoller's
	var busy, idle []int64
	var spinnerTid atomic.Int64
	buf := make([]byte, 8)
	for i := 0; i < o.n; i++ {
		var ts syscall.Timespec
		syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
		at := ts.Nano() + int64(expire)
		its := [4]int64{0, 0, at / 1e9, at % 1e9} // interval, value
		if _, _, e := syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, fd,
			1 /* TFD_TIMER_ABSTIME */, uintptr(unsafe.Pointer(&its)), 0, 0, 0); e != 0 {
			die("timerfd_settime: %v", e)
		}
		spinnerTid.Store(0)
		done := make(chan struct{})
		go func() {
			spinnerTid.Store(int64(syscall.Gettid()))
			t0 := time.Now()
			for time.Since(t0) < spin {
			}
			close(done)
		}()
		tid := int64(syscall.Gettid())
		if n, err := tf.Read(buf); n != 8 || err != nil {
			die("read timerfd: %v", err)
		}
		syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
		lat := ts.Nano() - at
		if spinnerTid.Load() == tid {
			busy = append(busy, lat)
		} else {
			idle = append(idle, lat)
		}
		<-done
	}
	slices.Sort(busy)
	slices.Sort(idle)
	if len(busy) > 0 {
		emit("wake_busy_owner_p50_us", float64(percentile(busy, 50))/1e3, "us")
		emit("wake_busy_owner_p99_us", float64(percentile(busy, 99))/1e3, "us")
	}
	if len(idle) > 0 {
		emit("wake_idle_owner_p50_us", float64(percentile(idle, 50))/1e3, "us")
		emit("wake_idle_owner_p99_us", float64(percentile(idle, 99))/1e3, "us")
	}
	emit("wake_busy_owner_samples", float64(len(busy)), "samples")
	emit("wake_idle_owner_samples", float64(len(idle)), "samples")
	emit("wake_threads", threads(), "threads")
}
