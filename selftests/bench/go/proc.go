// SPDX-License-Identifier: MIT

package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// procStatus returns a number field of /proc/self/status ("VmHWM",
// "Threads"), or -1.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
	return -1
}

// maxRSSMB is the peak resident set (VmHWM) in MiB.
func maxRSSMB() float64 { return float64(procStatus("VmHWM")) / 1024 }

func threads() float64 { return float64(procStatus("Threads")) }

// splitmix64 is the hash behind the timers bench's durations; bench.h has
// the same, so both languages sleep the same list of durations.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// percentile is the nearest-rank percentile q (0-100) of sorted v.
func percentile(v []int64, q int) int64 {
	i := (q*len(v)+99)/100 - 1
	if i < 0 {
		i = 0
	}
	return v[i]
}
