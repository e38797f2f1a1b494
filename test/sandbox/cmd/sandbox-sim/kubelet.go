package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// The kubelet endpoint of a simulated node. The apiserver proxies
// pods/log (kubectl logs) to https://<InternalIP>:<kubeletEndpoint.Port>/containerLogs/...
// and does not verify the kubelet's certificate unless told to, so a
// self-signed certificate made at start is enough.

func selfSignedCert(host string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{host, "localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

type kubeletServer struct {
	node   *simNode
	driver *podDriver
}

func (k *kubeletServer) serve(ctx context.Context) error {
	cert, err := selfSignedCert(k.node.name)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/containerLogs/", k.containerLogs)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the sandbox's simulated kubelet only serves /containerLogs and /healthz", http.StatusNotImplemented)
	})
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", k.node.port))
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	klog.InfoS("kubelet endpoint serving", "node", k.node.name, "addr", ln.Addr().String())
	err = srv.ServeTLS(ln, "", "")
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}

// containerLogs answers GET /containerLogs/{namespace}/{pod}/{container}.
func (k *kubeletServer) containerLogs(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/containerLogs/"), "/")
	if len(parts) != 3 {
		http.Error(w, "path must be /containerLogs/{namespace}/{pod}/{container}", http.StatusBadRequest)
		return
	}
	ns, name, container := parts[0], parts[1], parts[2]
	pod, err := k.driver.lister.Pods(ns).Get(name)
	if err != nil || pod.Spec.NodeName != k.node.name {
		http.Error(w, fmt.Sprintf("pod %s/%s not found on node %s", ns, name, k.node.name), http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	previous := q.Get("previous") == "true"
	follow := q.Get("follow") == "true"
	timestamps := q.Get("timestamps") == "true"

	lines, startedAt, running, status, msg := k.logLines(ns, name, string(pod.UID), container, previous)
	if status != http.StatusOK {
		http.Error(w, msg, status)
		return
	}
	if s := q.Get("sinceSeconds"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && startedAt.Before(time.Now().Add(-time.Duration(n)*time.Second)) {
			lines = nil
		}
	}
	if s := q.Get("sinceTime"); s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil && startedAt.Before(t) {
			lines = nil
		}
	}
	if s := q.Get("tailLines"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < len(lines) {
			lines = lines[len(lines)-n:]
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if timestamps {
			b.WriteString(startedAt.UTC().Format(time.RFC3339Nano))
			b.WriteByte(' ')
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	out := b.String()
	if s := q.Get("limitBytes"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < len(out) {
			out = out[:n]
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(out))
	if q.Get("tailLines") == "" && q.Get("limitBytes") == "" && len(lines) > 0 {
		writeGeneratedLog(w, k.generatedLogBytes(ns, name, container))
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if !follow || !running {
		return
	}
	// follow: keep the stream open while this run of the container lasts
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			_, st, still, code, _ := k.logLines(ns, name, string(pod.UID), container, false)
			if code != http.StatusOK || !still || !st.Equal(startedAt) {
				return
			}
		}
	}
}

// logLines returns what the container "printed": the contract's line, then
// its SANDBOX_LOG value. It also says whether that run is still going.
func (k *kubeletServer) logLines(ns, name, uid, container string, previous bool) ([]string, time.Time, bool, int, string) {
	sim := k.driver.simFor(ns, name, "")
	if sim == nil || string(sim.uid) != uid {
		return nil, time.Time{}, false, http.StatusBadRequest,
			fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", container, name)
	}
	sim.mu.Lock()
	defer sim.mu.Unlock()
	c := sim.findContainer(container)
	if c == nil {
		return nil, time.Time{}, false, http.StatusBadRequest,
			fmt.Sprintf("container %s is not valid for pod %s", container, name)
	}
	startedAt := c.startedAt
	if previous {
		if c.lastTerm == nil && !(c.st == csBackoff && c.term != nil) {
			return nil, time.Time{}, false, http.StatusBadRequest,
				fmt.Sprintf("previous terminated container %q in pod %q not found", container, name)
		}
		if c.st == csBackoff {
			startedAt = c.term.startedAt
		} else {
			startedAt = c.lastTerm.startedAt
		}
	} else if !c.everStarted {
		reason := c.waitReason
		if reason == "" {
			reason = "PodInitializing"
		}
		return nil, time.Time{}, false, http.StatusBadRequest,
			fmt.Sprintf("container %q in pod %q is waiting to start: %s", container, name, reason)
	}
	lines := []string{fmt.Sprintf("sandbox: %s/%s ran %s", name, container, c.image)}
	if c.logEnv != "" {
		lines = append(lines, strings.Split(strings.TrimRight(c.logEnv, "\n"), "\n")...)
	}
	return lines, startedAt, !previous && c.st == csRunning, http.StatusOK, ""
}

// maxGeneratedLogBytes caps SANDBOX_LOG_BYTES (1 GiB).
const maxGeneratedLogBytes = 1 << 30

// generatedLogBytes is the container's SANDBOX_LOG_BYTES (0 when unset).
func (k *kubeletServer) generatedLogBytes(ns, name, container string) int64 {
	sim := k.driver.simFor(ns, name, "")
	if sim == nil {
		return 0
	}
	sim.mu.Lock()
	defer sim.mu.Unlock()
	if c := sim.findContainer(container); c != nil {
		return c.logBytes
	}
	return 0
}

// writeGeneratedLog streams n bytes of numbered 100-byte lines
// ("sandbox log line <i>" padded with spaces; the last one may be shorter),
// so a test can have a container "print" far more than an env var can hold
// without the simulator keeping it in memory. tailLines and limitBytes
// requests leave it out.
func writeGeneratedLog(w http.ResponseWriter, n int64) {
	const lineLen = 100
	buf := make([]byte, 0, 64*1024)
	for i := int64(0); n > 0; i++ {
		line := fmt.Sprintf("%-*s\n", lineLen-1, fmt.Sprintf("sandbox log line %d", i))
		if int64(len(line)) > n {
			line = line[:n-1] + "\n"
		}
		buf = append(buf, line...)
		n -= int64(len(line))
		if len(buf) >= 60*1024 || n == 0 {
			if _, err := w.Write(buf); err != nil {
				return
			}
			buf = buf[:0]
		}
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}
