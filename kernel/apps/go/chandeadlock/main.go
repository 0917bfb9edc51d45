// A deadlock the Go runtime detects itself: main waits to receive from a channel that
// collect would send on, but collect waits for a mutex main holds. With every goroutine
// blocked the runtime prints "fatal error: all goroutines are asleep - deadlock!" and
// each goroutine's trace ("goroutine 1 [chan receive]:", "[semacquire]" for the mutex)
// and exits with status 2.
//
// Triage must conclude: hang-deadlock (the runtime ended it, but it is a deadlock), kind
// go-deadlock, title "go-fatal: all goroutines are asleep - deadlock! (main.main on chan
// receive, main.collect on semacquire)", the goroutines named by their own functions:
// main.collect + main.main.
package main

import (
	"fmt"
	"sync"
)

type totals struct {
	mu  sync.Mutex
	sum int
}

func collect(t *totals, values []int, done chan<- int) {
	t.mu.Lock() // main holds it while it waits on done: the bug
	for _, v := range values {
		t.sum += v
	}
	t.mu.Unlock()
	done <- t.sum
}

func main() {
	fmt.Println("chandeadlock: collecting")
	t := &totals{}
	done := make(chan int)
	t.mu.Lock()
	go collect(t, []int{1, 2, 3}, done)
	sum := <-done
	t.mu.Unlock()
	fmt.Println("chandeadlock FAILED: sum", sum)
}
