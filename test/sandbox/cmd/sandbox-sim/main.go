// Command sandbox-sim simulates the nodes of the oz-worker sandbox cluster.
//
// It registers Ready Nodes, renews their Leases, plays the kubelet for every
// pod bound to them (statuses scripted by image tag, see behaviour.go) and
// serves each node's kubelet endpoint for pods/log. Everything else in the
// sandbox is the real Kubernetes control plane.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

func main() {
	klog.InitFlags(nil)
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the simulator (needs to manage nodes, leases, pods)")
	nodes := flag.Int("nodes", 2, "number of simulated nodes")
	prefix := flag.String("node-prefix", "sandbox-node-", "node names are <prefix><1..n>")
	basePort := flag.Int("kubelet-port-base", 26250, "node i serves its kubelet endpoint on 127.0.0.1:<base+i-1>")
	workers := flag.Int("workers", 32, "pod status workers")
	qps := flag.Float64("qps", 1000, "client QPS")
	burst := flag.Int("burst", 2000, "client burst")
	version := flag.String("kubelet-version", "v0.0.0", "version reported as nodeInfo.kubeletVersion")
	flag.Parse()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-sim:", err)
		os.Exit(1)
	}
	cfg.QPS = float32(*qps)
	cfg.Burst = *burst
	cfg.UserAgent = "sandbox-sim"
	client := kubernetes.NewForConfigOrDie(cfg)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	var sims []*simNode
	var names []string
	for i := 1; i <= *nodes; i++ {
		n := &simNode{name: fmt.Sprintf("%s%d", *prefix, i), port: int32(*basePort + i - 1), version: *version}
		sims = append(sims, n)
		names = append(names, n.name)
	}

	factory := informers.NewSharedInformerFactory(client, 0)
	podInformer := factory.Core().V1().Pods()
	informer := podInformer.Informer()
	driver := newPodDriver(client, podInformer.Lister(), informer, names)

	errs := make(chan error, len(sims))
	for _, n := range sims {
		ks := &kubeletServer{node: n, driver: driver}
		go func() {
			if err := ks.serve(ctx); err != nil {
				errs <- fmt.Errorf("kubelet endpoint of %s: %w", n.name, err)
			}
		}()
	}

	factory.Start(ctx.Done())
	for !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		if ctx.Err() != nil {
			return
		}
	}
	klog.InfoS("pod informer synced")
	go driver.run(ctx, *workers)

	registered := make(chan string, len(sims))
	for _, n := range sims {
		go n.run(ctx, client, registered)
	}
	go func() {
		for range sims {
			select {
			case name := <-registered:
				klog.InfoS("node registered and Ready", "node", name)
			case <-ctx.Done():
				return
			}
		}
	}()

	select {
	case <-ctx.Done():
		klog.InfoS("shutting down")
		time.Sleep(100 * time.Millisecond)
	case err := <-errs:
		klog.ErrorS(err, "fatal")
		os.Exit(1)
	}
}
