package main

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func testPod(policy corev1.RestartPolicy, init []corev1.Container, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: policy, InitContainers: init, Containers: containers}}
}

func ctr(name, image string) corev1.Container { return corev1.Container{Name: name, Image: image} }

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// runUntil advances the script to t0+d.
func runUntil(p *podSim, d time.Duration) { p.advance(t0.Add(d)) }

func TestImageTag(t *testing.T) {
	for image, want := range map[string]string{
		"busybox:1.36": "1.36", "x:exit-3": "exit-3", "reg:5000/a/b:oom": "oom", "reg:5000/a/b": "", "a@sha256:00": "",
	} {
		if got := imageTag(image); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestOrdinaryAndExit(t *testing.T) {
	p := newPodSim(testPod(corev1.RestartPolicyNever, nil, ctr("a", "busybox:1.36"), ctr("b", "x:exit-3")), t0)
	runUntil(p, 500*time.Millisecond)
	if p.phase != corev1.PodRunning {
		t.Fatalf("phase at 0.5 s = %s", p.phase)
	}
	runUntil(p, 2*time.Second)
	if p.phase != corev1.PodFailed || !p.terminal {
		t.Fatalf("phase = %s terminal=%v", p.phase, p.terminal)
	}
	if c := p.findContainer("b"); c.term.exitCode != 3 || c.term.reason != "Error" || !c.term.finishedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("b = %+v", c.term)
	}
	if c := p.findContainer("a"); c.term.exitCode != 0 || c.term.reason != "Completed" {
		t.Fatalf("a = %+v", c.term)
	}
}

func TestInitOrderSidecarAndSleep(t *testing.T) {
	sidecar := ctr("proxy", "envoy:1")
	sidecar.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	p := newPodSim(testPod(corev1.RestartPolicyNever,
		[]corev1.Container{ctr("one", "busybox:1"), sidecar, ctr("two", "busybox:1")},
		ctr("main", "x:sleep-3")), t0)
	runUntil(p, 10*time.Second)
	if p.phase != corev1.PodSucceeded {
		t.Fatalf("phase = %s", p.phase)
	}
	one, two, main, proxy := p.findContainer("one"), p.findContainer("two"), p.findContainer("main"), p.findContainer("proxy")
	if !two.term.startedAt.Equal(one.term.finishedAt) || !main.term.startedAt.Equal(two.term.finishedAt) {
		t.Fatalf("order: one %+v two %+v main %+v", one.term, two.term, main.term)
	}
	if main.term.finishedAt.Sub(main.term.startedAt) != 3*time.Second {
		t.Fatalf("sleep-3 ran %s", main.term.finishedAt.Sub(main.term.startedAt))
	}
	if proxy.term.exitCode != 143 || !proxy.term.finishedAt.Equal(main.term.finishedAt) {
		t.Fatalf("sidecar = %+v", proxy.term)
	}
}

func TestNeverStarting(t *testing.T) {
	p := newPodSim(testPod(corev1.RestartPolicyNever, []corev1.Container{ctr("setup", "x:pull-error")}, ctr("main", "busybox")), t0)
	runUntil(p, 100*time.Millisecond)
	if c := p.findContainer("setup"); c.waitReason != "ErrImagePull" {
		t.Fatalf("reason = %s", c.waitReason)
	}
	if next := p.advance(t0.Add(5 * time.Second)); !next.IsZero() {
		t.Fatalf("unexpected next event %s", next)
	}
	if c := p.findContainer("setup"); c.waitReason != "ImagePullBackOff" || p.phase != corev1.PodPending {
		t.Fatalf("reason = %s phase = %s", c.waitReason, p.phase)
	}
}

func TestOOMAndInitFailure(t *testing.T) {
	p := newPodSim(testPod(corev1.RestartPolicyNever, nil, ctr("main", "x:oom")), t0)
	runUntil(p, 5*time.Second)
	if c := p.findContainer("main"); c.term.exitCode != 137 || c.term.reason != "OOMKilled" || p.phase != corev1.PodFailed {
		t.Fatalf("oom: %+v %s", c.term, p.phase)
	}
	p = newPodSim(testPod(corev1.RestartPolicyNever, []corev1.Container{ctr("setup", "x:exit-1")}, ctr("main", "busybox")), t0)
	runUntil(p, 5*time.Second)
	if p.phase != corev1.PodFailed || p.findContainer("main").st != csNotStarted {
		t.Fatalf("init failure: phase %s main %v", p.phase, p.findContainer("main").st)
	}
}

func TestOnFailureRestarts(t *testing.T) {
	p := newPodSim(testPod(corev1.RestartPolicyOnFailure, nil, ctr("main", "x:exit-2")), t0)
	runUntil(p, 10*time.Second)
	c := p.findContainer("main")
	if c.restartCount < 2 || p.phase != corev1.PodRunning {
		t.Fatalf("restarts %d phase %s", c.restartCount, p.phase)
	}
}

func TestAlwaysRunsUntaggedForever(t *testing.T) {
	p := newPodSim(testPod(corev1.RestartPolicyAlways, nil, ctr("web", "nginx:1.27")), t0)
	if next := p.advance(t0.Add(time.Hour)); !next.IsZero() || p.phase != corev1.PodRunning {
		t.Fatalf("next %s phase %s", next, p.phase)
	}
}

func TestActiveDeadline(t *testing.T) {
	pod := testPod(corev1.RestartPolicyNever, nil, ctr("main", "x:sleep-60"))
	pod.Spec.ActiveDeadlineSeconds = ptr.To(int64(2))
	p := newPodSim(pod, t0)
	runUntil(p, 3*time.Second)
	if p.phase != corev1.PodFailed || p.reason != "DeadlineExceeded" {
		t.Fatalf("phase %s reason %s", p.phase, p.reason)
	}
}
