// goclient: the Go program of tests/supervisor.bats, built there twice
// (CGO_ENABLED=0, a static binary with Go's own resolver and raw system
// calls; and with cgo, dynamically linked). The standard library only.
//
//	goclient get URL           one GET on a fresh connection: prints
//	                           "remote=IP:PORT", then "sha=HEX" of the body
//	goclient many N M URL SHA  N goroutines, M GETs each, every one on a
//	                           connection of its own; prints "ok=K bad=B"
//	                           and one "bad: ..." line per failure
//	goclient dial HOST:PORT    prints "connected remote=IP:PORT" or
//	                           "error: ..." (exit 1)
//
// Exit 0 only when everything asked for worked.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"sync"
	"time"
)

const requestTimeout = 60 * time.Second

// fetch GETs url on a new connection; it returns the body's sha256 and the
// connection's RemoteAddr as the program sees it (getpeername()).
func fetch(client *http.Client, url string) (string, string, error) {
	var remote string
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		remote = i.Conn.RemoteAddr().String()
	}}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return "", "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", remote, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", remote, fmt.Errorf("status %s", resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return "", remote, err
	}
	return hex.EncodeToString(h.Sum(nil)), remote, nil
}

func newClient() *http.Client {
	// No proxy from the environment: the tunnel must come from socksify.
	// One connection per GET: a name answers with an IPv4 and an IPv6
	// placeholder, and Go's Fast Fallback would dial the second family
	// too when the first is slower than 300 ms (a loaded machine), one
	// more session at the proxy than GETs, which the tests count.
	d := &net.Dialer{FallbackDelay: -1}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: d.DialContext}
	return &http.Client{Transport: tr, Timeout: requestTimeout}
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: goclient get URL | many N M URL SHA | dial HOST:PORT")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "get":
		sum, remote, err := fetch(newClient(), os.Args[2])
		fmt.Printf("remote=%s\n", remote)
		if err != nil {
			fmt.Printf("error: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("sha=%s\n", sum)
	case "many":
		if len(os.Args) != 6 {
			os.Exit(2)
		}
		n, _ := strconv.Atoi(os.Args[2])
		m, _ := strconv.Atoi(os.Args[3])
		url, want := os.Args[4], os.Args[5]
		client := newClient()
		var mu sync.Mutex
		var wg sync.WaitGroup
		ok, bad := 0, 0
		for g := 0; g < n; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < m; i++ {
					sum, _, err := fetch(client, url)
					mu.Lock()
					if err == nil && sum == want {
						ok++
					} else {
						bad++
						fmt.Printf("bad: goroutine %d request %d: sha=%s err=%v\n", g, i, sum, err)
					}
					mu.Unlock()
				}
			}(g)
		}
		wg.Wait()
		fmt.Printf("ok=%d bad=%d\n", ok, bad)
		if bad != 0 {
			os.Exit(1)
		}
	case "dial":
		c, err := net.DialTimeout("tcp", os.Args[2], requestTimeout)
		if err != nil {
			fmt.Printf("error: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("connected remote=%s\n", c.RemoteAddr())
		c.Close()
	default:
		os.Exit(2)
	}
}
