// Goroutines, channels, a mutex, timers, the garbage collector and preemption, for the
// kernel's tests (tests/test_go.py): a static Go program (CGO_ENABLED=0) whose output
// never depends on how its threads were scheduled, so the host's run is the oracle.
//
// What the runtime asks of the kernel along the way: threads by clone with CLONE_SETTLS,
// futexes, its heap at mmap address hints (0xc000000000), madvise, epoll_pwait on a
// pipe for its timers (the netpoller) and edge-triggered epoll for os.Pipe, sigaltstack
// and SIGURG by tgkill to preempt, kill and its own handler for os/signal.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Eight goroutines each sum 1..n*1000 and send the sum; the sums arrive in any order.
func workers() {
	results := make(chan int)
	var wg sync.WaitGroup
	for i := 1; i <= 8; i++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			sum := 0
			for k := 1; k <= n*1000; k++ {
				sum += k
			}
			results <- sum
		}(i)
	}
	go func() { wg.Wait(); close(results) }()
	var all []int
	for r := range results {
		all = append(all, r)
	}
	sort.Ints(all)
	fmt.Println("workers:", all)
}

// Three stages joined by an unbuffered and a buffered channel: order is kept.
func pipeline() {
	numbers := make(chan int)
	squares := make(chan int, 4)
	go func() {
		for i := 1; i <= 20; i++ {
			numbers <- i
		}
		close(numbers)
	}()
	go func() {
		for v := range numbers {
			squares <- v * v
		}
		close(squares)
	}()
	var order []int
	total := 0
	for v := range squares {
		order = append(order, v)
		total += v
	}
	fmt.Println("pipeline:", order[:6], "... total", total)
}

// Eight goroutines increment one counter under a sync.Mutex; at GOMAXPROCS > 1 they
// contend for real, and the runtime parks the losers on futexes.
func mutex() {
	var mu sync.Mutex
	var wg sync.WaitGroup
	counter := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 20000; k++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Println("mutex: counter", counter)
}

// time.Sleep, time.After in a select, a Ticker and a stopped Timer: the netpoller's
// epoll_pwait with timeouts.
func timers() {
	start := time.Now()
	time.Sleep(20 * time.Millisecond)
	slept := time.Since(start) >= 20*time.Millisecond
	never := make(chan int)
	after := "none"
	select {
	case <-never:
		after = "never"
	case <-time.After(30 * time.Millisecond):
		after = "after"
	}
	ticker := time.NewTicker(5 * time.Millisecond)
	ticks := 0
	for range ticker.C {
		ticks++
		if ticks == 5 {
			break
		}
	}
	ticker.Stop()
	long := time.NewTimer(time.Hour)
	stopped := long.Stop()
	fmt.Println("timers: slept", slept, "select got", after, "ticks", ticks,
		"long timer stopped", stopped, "at least 75ms", time.Since(start) >= 75*time.Millisecond)
}

type node struct {
	next *node
	data [64]byte
}

// 200000 allocations of which 200 stay reachable, and two forced collections.
func gc() {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var keep *node
	for i := 0; i < 200000; i++ {
		n := &node{}
		n.data[0] = byte(i)
		if i%1000 == 0 {
			n.next = keep
			keep = n
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	kept, sum := 0, 0
	for n := keep; n != nil; n = n.next {
		kept++
		sum += int(n.data[0])
	}
	fmt.Println("gc: two cycles", after.NumGC-before.NumGC >= 2, "kept", kept, "sum", sum)
}

// With one P, a goroutine spinning in a loop without calls keeps it until the runtime
// preempts it asynchronously: sysmon sees it run too long and sends its thread SIGURG
// (tgkill), whose handler, on the sigaltstack, switches goroutines. Only then can main
// wake from its sleep and stop it. Without that (GODEBUG=asyncpreemptoff=1) this hangs.
func preemption() {
	old := runtime.GOMAXPROCS(1)
	var stop int32
	var spins int64
	done := make(chan bool)
	go func() {
		for atomic.LoadInt32(&stop) == 0 {
			spins++
		}
		done <- true
	}()
	time.Sleep(50 * time.Millisecond)
	atomic.StoreInt32(&stop, 1)
	<-done
	runtime.GOMAXPROCS(old)
	fmt.Println("preemption: main woke while the spinner spun", spins > 0)
}

// A collection stops the world: every P's goroutine must stop, including one spinning
// without calls on each P, which only a signal can stop (on every CPU at once at -smp 4).
func stopTheWorld() {
	var stop int32
	var wg sync.WaitGroup
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for atomic.LoadInt32(&stop) == 0 {
			}
		}()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&after)
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	fmt.Println("stop the world: three collections past a spinner on every P",
		after.NumGC-before.NumGC >= 3)
}

// os.Pipe's ends are non-blocking and on the netpoller, edge-triggered (EPOLLET): a
// reader that finds the pipe empty parks its goroutine until epoll reports new data.
func pipes() {
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Println("pipes:", err)
		return
	}
	go func() {
		for i := 1; i <= 10; i++ {
			fmt.Fprintf(w, "line %d\n", i)
			time.Sleep(2 * time.Millisecond)
		}
		w.Close()
	}()
	lines, sum := 0, 0
	scanner := bufio.NewScanner(r)
	for scanner.Scan() {
		var n int
		fmt.Sscanf(scanner.Text(), "line %d", &n)
		lines++
		sum += n
	}
	r.Close()
	fmt.Println("pipes: lines", lines, "sum", sum, "error", scanner.Err())
}

// os/signal: the runtime's handler queues the signal for a goroutine that receives it.
func signals() {
	got := make(chan os.Signal, 1)
	signal.Notify(got, syscall.SIGUSR1)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	select {
	case s := <-got:
		fmt.Println("signals: got", s)
	case <-time.After(5 * time.Second):
		fmt.Println("signals: none")
	}
	signal.Stop(got)
}

func main() {
	workers()
	pipeline()
	mutex()
	timers()
	pipes()
	signals()
	gc()
	preemption()
	stopTheWorld()
	fmt.Println("done")
	os.Exit(0)
}
