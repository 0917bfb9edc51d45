// A write to a nil map in a goroutine: the runtime panics ("assignment to entry in nil
// map") and exits with status 2, printing the panic and the goroutine's trace.
//
// Triage must conclude: app-abort, kind go-panic-assignment-to-entry-in-nil-map, title
// "go-panic: assignment to entry in nil map in main.(*cache).put", guilty frames
// main.(*cache).put | main.worker (runtime.mapassign_faststr and runtime.gopanic are the
// runtime's); no goroutine id in the signature.
package main

import (
	"fmt"
	"os"
	"sync"
)

type cache struct {
	entries map[string]int // never made: the bug
}

//go:noinline
func (c *cache) put(key string, value int) {
	c.entries[key] = value
}

func worker(c *cache, keys []string, wg *sync.WaitGroup) {
	for i, key := range keys {
		c.put(key, i)
	}
	wg.Done() // not deferred: a panic must not wake main first
}

func main() {
	fmt.Println("nilmap: filling the cache")
	c := &cache{}
	var wg sync.WaitGroup
	wg.Add(1)
	go worker(c, os.Args[:1], &wg)
	wg.Wait()
	fmt.Println("nilmap FAILED: the write went through")
}
