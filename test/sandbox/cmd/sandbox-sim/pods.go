package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// podDriver plays the kubelet for every pod bound to one of the simulated
// nodes: a shared informer feeds a rate-limited work queue, and a fixed pool
// of workers patches pod status (or completes graceful deletion).
type podDriver struct {
	client kubernetes.Interface
	lister listersv1.PodLister
	nodes  map[string]bool
	queue  workqueue.TypedRateLimitingInterface[string]

	mu   sync.Mutex
	sims map[string]*podSim // by namespace/name
}

func newPodDriver(client kubernetes.Interface, lister listersv1.PodLister, informer cache.SharedIndexInformer, nodes []string) *podDriver {
	d := &podDriver{
		client: client,
		lister: lister,
		nodes:  map[string]bool{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 5*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "pods"}),
		sims: map[string]*podSim{},
	}
	for _, n := range nodes {
		d.nodes[n] = true
	}
	enqueue := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				pod, _ = tomb.Obj.(*corev1.Pod)
			}
		}
		if pod == nil || !d.nodes[pod.Spec.NodeName] {
			return
		}
		key, err := cache.MetaNamespaceKeyFunc(pod)
		if err == nil {
			d.queue.Add(key)
		}
	}
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	})
	return d
}

func (d *podDriver) run(ctx context.Context, workers int) {
	for i := 0; i < workers; i++ {
		go func() {
			for d.processNext(ctx) {
			}
		}()
	}
	<-ctx.Done()
	d.queue.ShutDown()
}

func (d *podDriver) processNext(ctx context.Context) bool {
	key, quit := d.queue.Get()
	if quit {
		return false
	}
	defer d.queue.Done(key)
	next, err := d.sync(ctx, key)
	if err != nil {
		klog.V(2).InfoS("pod sync failed, retrying", "pod", key, "err", err)
		d.queue.AddRateLimited(key)
		return true
	}
	d.queue.Forget(key)
	if !next.IsZero() {
		wait := time.Until(next)
		if wait < 0 {
			wait = 0
		}
		d.queue.AddAfter(key, wait)
	}
	return true
}

// simFor returns the script of a pod (nil when the pod is gone or unknown).
func (d *podDriver) simFor(ns, name string, uid types.UID) *podSim {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sims[ns+"/"+name]
	if s == nil || (uid != "" && s.uid != uid) {
		return nil
	}
	return s
}

func (d *podDriver) sync(ctx context.Context, key string) (time.Time, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return time.Time{}, nil
	}
	pod, err := d.lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		d.mu.Lock()
		delete(d.sims, key)
		d.mu.Unlock()
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	if !d.nodes[pod.Spec.NodeName] {
		return time.Time{}, nil
	}
	if pod.DeletionTimestamp != nil {
		// the containers are "killed" at once: finish the graceful deletion
		zero := int64(0)
		uid := pod.UID
		err := d.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &uid},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return time.Time{}, err
		}
		return time.Time{}, nil
	}

	d.mu.Lock()
	sim := d.sims[key]
	if sim == nil || sim.uid != pod.UID {
		t0 := time.Now()
		if pod.Status.StartTime != nil {
			t0 = pod.Status.StartTime.Time // replay after a simulator restart
		}
		sim = newPodSim(pod, t0)
		d.sims[key] = sim
	}
	d.mu.Unlock()

	sim.mu.Lock()
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		// terminal pods never change again; keep the script for logs
		if sim.lastPatch == "" {
			sim.advance(time.Now())
			sim.terminal = true
			sim.lastPatch = "terminal"
		}
		sim.mu.Unlock()
		return time.Time{}, nil
	}
	next := sim.advance(time.Now())
	body, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": string(pod.UID)},
		"status":   sim.status(pod.Spec.HostNetwork),
	})
	if err != nil {
		sim.mu.Unlock()
		return time.Time{}, err
	}
	patch := string(body)
	if patch == sim.lastPatch {
		sim.mu.Unlock()
		return next, nil
	}
	sim.mu.Unlock()

	_, err = d.client.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status")
	if err != nil {
		if apierrors.IsNotFound(err) {
			return time.Time{}, nil
		}
		if apierrors.IsInvalid(err) || apierrors.IsConflict(err) {
			klog.InfoS("pod status patch rejected", "pod", key, "err", err)
		}
		return time.Time{}, fmt.Errorf("patch status: %w", err)
	}
	sim.mu.Lock()
	sim.lastPatch = patch
	events := sim.events
	sim.events = nil
	sim.mu.Unlock()
	for _, e := range events {
		d.recordEvent(ctx, pod, e)
	}
	return next, nil
}

// recordEvent posts an event as the node's kubelet would (best effort).
func (d *podDriver) recordEvent(ctx context.Context, pod *corev1.Pod, e simEvent) {
	now := metav1.Now()
	fieldPath := ""
	for _, c := range pod.Spec.InitContainers {
		if c.Name == e.container {
			fieldPath = fmt.Sprintf("spec.initContainers{%s}", c.Name)
		}
	}
	if fieldPath == "" {
		fieldPath = fmt.Sprintf("spec.containers{%s}", e.container)
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
			UID: pod.UID, ResourceVersion: pod.ResourceVersion, FieldPath: fieldPath,
		},
		Reason:              e.reason,
		Message:             e.message,
		Type:                e.eventType,
		Source:              corev1.EventSource{Component: "kubelet", Host: pod.Spec.NodeName},
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		ReportingController: "kubelet",
		ReportingInstance:   pod.Spec.NodeName,
	}
	if _, err := d.client.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		klog.V(2).InfoS("event not recorded", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}
