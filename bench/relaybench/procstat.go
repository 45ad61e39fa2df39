package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTime returns the user+system CPU time a process has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// rssBytes returns VmRSS from /proc/<pid>/status.
func rssBytes(pid int) (int64, error) {
	return procKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
}

// pssBytes returns the proportional set size (shared pages divided among
// the processes that map them) from /proc/<pid>/smaps_rollup.
func pssBytes(pid int) (int64, error) {
	return procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
}

func procKB(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		fields := strings.Fields(line[len(key):])
		if len(fields) == 0 {
			break
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", path, key, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%s: no %s line", path, key)
}

// machineCPU returns the busy and total jiffies of all CPUs (/proc/stat).
func machineCPU() (busy, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, nil
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuMeter measures the CPU a set of processes uses over a window.
type cpuMeter struct {
	pids  []int
	start []time.Duration
	at    time.Time
	busy  int64
	total int64
}

func startCPU(pids ...int) (*cpuMeter, error) {
	m := &cpuMeter{pids: pids, start: make([]time.Duration, len(pids))}
	for i, pid := range pids {
		t, err := cpuTime(pid)
		if err != nil {
			return nil, err
		}
		m.start[i] = t
	}
	m.at = time.Now()
	m.busy, m.total, _ = machineCPU()
	return m, nil
}

// cpuReading is the result of a cpuMeter: CPU used by each process, as a
// fraction of one core, and the machine's busy share of all its cores.
type cpuReading struct {
	perProc  []float64
	sum      float64
	wall     time.Duration
	machine  float64 // busy fraction of all CPUs, other programs included
	machineN int     // number of CPUs
}

func (m *cpuMeter) stop() (cpuReading, error) {
	r := cpuReading{perProc: make([]float64, len(m.pids))}
	ends := make([]time.Duration, len(m.pids))
	for i, pid := range m.pids {
		t, err := cpuTime(pid)
		if err != nil {
			return r, err
		}
		ends[i] = t
	}
	r.wall = time.Since(m.at)
	for i := range m.pids {
		r.perProc[i] = (ends[i] - m.start[i]).Seconds() / r.wall.Seconds()
		r.sum += r.perProc[i]
	}
	if busy, total, err := machineCPU(); err == nil && total > m.total {
		r.machine = float64(busy-m.busy) / float64(total-m.total)
	}
	return r, nil
}
