// SPDX-License-Identifier: MIT

package main

// httpd: the Go peer of user/examples/httpd.c, in the raw net package:
// a goroutine per connection, a read deadline on every request
// (SetReadDeadline before each read, -d ms; 0: none), graceful shutdown
// on SIGTERM or SIGINT (the listener closed, every connection's read
// deadline moved to now, then wait for them). It listens on 127.0.0.1,
// port -port (0: any free one), and prints "listening on ADDR:PORT".
// selftests/bench/wrk_pair loads it with wrk, as it does the kgo server.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

var httpAnswer = []byte("HTTP/1.1 200 OK\r\n" +
	"Content-Type: text/plain\r\n" +
	"Content-Length: 14\r\n" +
	"\r\n" +
	"Hello, World!\n")

var httpTooBig = []byte("HTTP/1.1 431 Request Header Fields Too Large\r\n" +
	"Content-Length: 0\r\n" +
	"Connection: close\r\n" +
	"\r\n")

func init() {
	benches["httpd"] = bench{httpd, opts{p: 2, n: 1, dl: 10000}}
}

type httpServer struct {
	deadline time.Duration
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	stopping bool
	wg       sync.WaitGroup
}

func wantsClose(head []byte) bool {
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		if len(line) >= 17 && bytes.EqualFold(line[:17],
			[]byte("connection: close")) {
			return true
		}
	}
	return false
}

func (s *httpServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	buf := make([]byte, 4096)
	have := 0
	for {
		for {
			end := bytes.Index(buf[:have], []byte("\r\n\r\n"))
			if end < 0 {
				break
			}
			used := end + 4
			closeAfter := wantsClose(buf[:used])
			if _, err := c.Write(httpAnswer); err != nil {
				return
			}
			copy(buf, buf[used:have])
			have -= used
			if closeAfter {
				return
			}
		}
		if have == len(buf) {
			c.Write(httpTooBig)
			return
		}
		if s.deadline > 0 {
			c.SetReadDeadline(time.Now().Add(s.deadline))
		}
		n, err := c.Read(buf[have:])
		if err != nil {
			return // EOF, or the deadline: idle
		}
		have += n
	}
}

func httpd(o opts) {
	srv := &httpServer{
		deadline: time.Duration(o.dl) * time.Millisecond,
		conns:    map[net.Conn]struct{}{},
	}
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", o.port))
	if err != nil {
		die("httpd: %v", err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			srv.mu.Lock()
			if srv.stopping {
				srv.mu.Unlock()
				c.Close()
				continue
			}
			srv.conns[c] = struct{}{}
			srv.wg.Add(1)
			srv.mu.Unlock()
			go srv.serve(c)
		}
	}()
	sig := <-sigs
	fmt.Fprintf(os.Stderr, "httpd: %v: shutting down\n", sig)
	srv.mu.Lock()
	srv.stopping = true
	for c := range srv.conns {
		c.SetReadDeadline(time.Now())
	}
	srv.mu.Unlock()
	ln.Close()
	srv.wg.Wait()
}
