package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The life of one simulated pod. A podSim is a deterministic script computed
// from the pod spec and the time the simulator first saw the pod (its
// status.startTime): advance(now) applies every scripted event up to now and
// returns the time of the next one. Restarting the simulator replays the same
// script from startTime, so statuses stay consistent.

type cstate int

const (
	csNotStarted cstate = iota
	csWaiting           // never starts (pull-error, invalid-image, config-error)
	csRunning
	csTerminated // final, or before a restart when backoff is set
	csBackoff    // terminated, waiting CrashLoopBackOff until nextStart
)

type termination struct {
	exitCode    int32
	reason      string
	message     string
	startedAt   time.Time
	finishedAt  time.Time
	containerID string
}

type simContainer struct {
	name     string
	image    string
	logEnv   string // value of the SANDBOX_LOG env var
	logBytes int64  // SANDBOX_LOG_BYTES: generated log bytes after the log (big-log tests)
	b        behaviour
	init     bool
	sidecar  bool // init container with restartPolicy Always
	restarts corev1.ContainerRestartPolicy

	st           cstate
	waitReason   string
	waitMessage  string
	startedAt    time.Time
	finishAt     time.Time // zero: runs until stopped
	term         *termination
	lastTerm     *termination
	restartCount int32
	nextStart    time.Time // backoff end, or the ErrImagePull -> ImagePullBackOff switch
	everStarted  bool
}

type podSim struct {
	mu       sync.Mutex
	uid      types.UID
	name     string
	ns       string
	t0       time.Time
	deadline time.Time // pod activeDeadlineSeconds, zero if none
	policy   corev1.RestartPolicy
	init     []*simContainer
	regular  []*simContainer

	initIdx    int
	initDone   bool
	cursor     time.Time // when the next init container (or the regular ones) may start
	phase      corev1.PodPhase
	reason     string
	message    string
	terminal   bool
	clock      time.Time // time of the last applied event
	conditions map[corev1.PodConditionType]condState
	lastPatch  string
	// events the kubelet would record, posted after the next status patch
	events []simEvent
}

type simEvent struct {
	eventType string // Normal or Warning
	reason    string
	message   string
	container string
}

type condState struct {
	status corev1.ConditionStatus
	since  time.Time
}

const maxBackoff = 10 * time.Second

func backoffFor(restarts int32) time.Duration {
	d := time.Second
	for i := int32(0); i < restarts && d < maxBackoff; i++ {
		d *= 2
	}
	if d > maxBackoff {
		d = maxBackoff
	}
	return d
}

func newPodSim(pod *corev1.Pod, t0 time.Time) *podSim {
	p := &podSim{
		uid:        pod.UID,
		name:       pod.Name,
		ns:         pod.Namespace,
		t0:         t0,
		cursor:     t0,
		clock:      t0,
		policy:     pod.Spec.RestartPolicy,
		phase:      corev1.PodPending,
		conditions: map[corev1.PodConditionType]condState{},
	}
	if p.policy == "" {
		p.policy = corev1.RestartPolicyAlways
	}
	if ads := pod.Spec.ActiveDeadlineSeconds; ads != nil {
		p.deadline = t0.Add(time.Duration(*ads) * time.Second)
	}
	mk := func(c corev1.Container, init bool) *simContainer {
		sc := &simContainer{name: c.Name, image: c.Image, b: behaviourOf(c.Image), init: init}
		for _, e := range c.Env {
			if e.Name == "SANDBOX_LOG" && e.ValueFrom == nil {
				sc.logEnv = e.Value
			}
			if e.Name == "SANDBOX_LOG_BYTES" && e.ValueFrom == nil {
				if n, err := strconv.ParseInt(strings.TrimSpace(e.Value), 10, 64); err == nil && n > 0 {
					sc.logBytes = min(n, maxGeneratedLogBytes)
				}
			}
		}
		switch {
		case init && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways:
			sc.sidecar = true
			sc.restarts = corev1.ContainerRestartPolicyAlways
		case init && p.policy == corev1.RestartPolicyNever:
			sc.restarts = corev1.ContainerRestartPolicyNever
		case init:
			// init containers of OnFailure and Always pods restart on failure
			sc.restarts = corev1.ContainerRestartPolicyOnFailure
		default:
			sc.restarts = corev1.ContainerRestartPolicy(p.policy)
		}
		return sc
	}
	for _, c := range pod.Spec.InitContainers {
		p.init = append(p.init, mk(c, true))
	}
	for _, c := range pod.Spec.Containers {
		p.regular = append(p.regular, mk(c, false))
	}
	return p
}

func (p *podSim) containerID(c *simContainer) string {
	return fmt.Sprintf("sandbox://%s-%s-%d", p.uid, c.name, c.restartCount)
}

// start runs (or fails to start) a container at time t.
func (p *podSim) start(c *simContainer, t time.Time) {
	if c.b.neverStarts() {
		c.st = csWaiting
		switch c.b.kind {
		case kindPullError:
			c.waitReason = "ErrImagePull"
			c.waitMessage = fmt.Sprintf("failed to pull and unpack image %q: sandbox: simulated pull error", c.image)
			c.nextStart = t.Add(time.Second)
		case kindInvalidImage:
			c.waitReason = "InvalidImageName"
			c.waitMessage = fmt.Sprintf("Failed to apply default image tag %q: couldn't parse image name %q: invalid reference format (sandbox)", c.image, c.image)
		case kindConfigError:
			c.waitReason = "CreateContainerConfigError"
			c.waitMessage = "sandbox: simulated container config error"
		}
		p.events = append(p.events, simEvent{"Warning", "Failed", "Error: " + c.waitReason, c.name})
		if c.b.kind == kindPullError {
			p.events = append(p.events, simEvent{"Warning", "Failed", c.waitMessage, c.name})
		}
		return
	}
	c.st = csRunning
	c.everStarted = true
	c.startedAt = t
	c.term = nil
	c.finishAt = time.Time{}
	if !(c.b.untagged && c.restarts == corev1.ContainerRestartPolicyAlways) {
		c.finishAt = t.Add(c.b.duration)
	}
}

// finish terminates a running container at t with its scripted exit.
func (p *podSim) finish(c *simContainer, t time.Time, exitCode int32, reason string) {
	c.term = &termination{exitCode: exitCode, reason: reason, startedAt: c.startedAt, finishedAt: t, containerID: p.containerID(c)}
	c.finishAt = time.Time{}
	restart := c.restarts == corev1.ContainerRestartPolicyAlways ||
		(c.restarts == corev1.ContainerRestartPolicyOnFailure && exitCode != 0)
	if restart {
		c.st = csBackoff
		c.nextStart = t.Add(backoffFor(c.restartCount))
	} else {
		c.st = csTerminated
	}
}

func scriptedExit(c *simContainer) (int32, string) {
	switch {
	case c.b.kind == kindOOM:
		return 137, "OOMKilled"
	case c.b.exitCode == 0:
		return 0, "Completed"
	default:
		return c.b.exitCode, "Error"
	}
}

// stopAll kills every running container at t (exit 143 for sidecars being
// stopped, 137 for containers killed by a deadline) and makes the pod terminal.
func (p *podSim) stopAll(t time.Time, exitCode int32) {
	for _, c := range append(append([]*simContainer{}, p.init...), p.regular...) {
		switch c.st {
		case csRunning:
			p.finish(c, t, exitCode, "Error")
			c.st = csTerminated
		case csBackoff:
			c.st = csTerminated
		}
	}
}

func (p *podSim) finalTerminated(c *simContainer) bool { return c.st == csTerminated }

// computePhase follows the kubelet's getPhase for the regular containers.
func (p *podSim) computePhase() corev1.PodPhase {
	if !p.initDone {
		return corev1.PodPending
	}
	var waiting, running, stopped, succeeded int
	for _, c := range p.regular {
		switch c.st {
		case csNotStarted, csWaiting:
			if c.lastTerm != nil {
				stopped++
			} else {
				waiting++
			}
		case csRunning:
			running++
		case csTerminated, csBackoff:
			stopped++
			if c.term != nil && c.term.exitCode == 0 {
				succeeded++
			}
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped > 0:
		switch p.policy {
		case corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case corev1.RestartPolicyOnFailure:
			if stopped == succeeded {
				return corev1.PodSucceeded
			}
			return corev1.PodRunning
		default:
			if stopped == succeeded {
				return corev1.PodSucceeded
			}
			return corev1.PodFailed
		}
	}
	return corev1.PodPending
}

// nextEvent returns the earliest pending scripted event and its action.
func (p *podSim) nextEvent() (time.Time, func(time.Time)) {
	if p.terminal {
		return time.Time{}, nil
	}
	var bestT time.Time
	var best func(time.Time)
	consider := func(t time.Time, fn func(time.Time)) {
		if best == nil || t.Before(bestT) {
			bestT, best = t, fn
		}
	}
	if !p.deadline.IsZero() {
		consider(p.deadline, func(t time.Time) {
			p.stopAll(t, 137)
			p.phase, p.reason, p.message = corev1.PodFailed, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
			p.terminal = true
		})
	}
	// container-level events that are the same in every stage
	containerEvents := func(c *simContainer) {
		switch c.st {
		case csWaiting:
			if c.b.kind == kindPullError && c.waitReason == "ErrImagePull" {
				consider(c.nextStart, func(time.Time) {
					c.waitReason = "ImagePullBackOff"
					c.waitMessage = fmt.Sprintf("Back-off pulling image %q", c.image)
					p.events = append(p.events, simEvent{"Normal", "BackOff", c.waitMessage, c.name})
				})
			}
		case csRunning:
			if !c.finishAt.IsZero() {
				consider(c.finishAt, func(t time.Time) {
					code, reason := scriptedExit(c)
					p.finish(c, t, code, reason)
				})
			}
		case csBackoff:
			consider(c.nextStart, func(t time.Time) {
				c.lastTerm = c.term
				c.restartCount++
				p.start(c, t)
			})
		}
	}
	if !p.initDone {
		for _, c := range p.init[:p.initIdx] {
			containerEvents(c) // started sidecars
		}
		if p.initIdx == len(p.init) {
			consider(p.cursor, func(t time.Time) {
				p.initDone = true
				for _, c := range p.regular {
					p.start(c, t)
				}
			})
			return bestT, best
		}
		c := p.init[p.initIdx]
		switch {
		case c.st == csNotStarted:
			consider(p.cursor, func(t time.Time) {
				p.start(c, t)
				if c.sidecar && c.st == csRunning {
					p.initIdx++
				}
			})
		case c.st == csTerminated && c.term != nil && c.term.exitCode == 0:
			consider(c.term.finishedAt, func(t time.Time) {
				p.initIdx++
				p.cursor = t
			})
		case c.st == csTerminated:
			// an init container failed and will not restart: the pod fails
			consider(c.term.finishedAt, func(t time.Time) {
				p.stopAll(t, 143)
				p.phase = corev1.PodFailed
				p.terminal = true
			})
		default:
			containerEvents(c)
		}
		return bestT, best
	}
	allDone := true
	var last time.Time
	for _, c := range p.regular {
		containerEvents(c)
		if !p.finalTerminated(c) {
			allDone = false
		} else if c.term != nil && c.term.finishedAt.After(last) {
			last = c.term.finishedAt
		}
	}
	for _, c := range p.init {
		containerEvents(c) // sidecars
	}
	if allDone && len(p.regular) > 0 {
		consider(last, func(t time.Time) {
			// the regular containers ended: sidecars get SIGTERM (exit 143)
			for _, c := range p.init {
				if c.sidecar && (c.st == csRunning || c.st == csBackoff) {
					if c.st == csRunning {
						p.finish(c, t, 143, "Error")
					}
					c.st = csTerminated
				}
			}
			p.phase = p.computePhase()
			p.terminal = true
		})
	}
	return bestT, best
}

// advance applies every event due by now; it returns the next event's time
// (zero when the script has nothing more to do).
func (p *podSim) advance(now time.Time) time.Time {
	for i := 0; i < 100000; i++ {
		t, fn := p.nextEvent()
		if fn == nil {
			return time.Time{}
		}
		if t.After(now) {
			return t
		}
		if t.Before(p.clock) {
			t = p.clock
		}
		fn(t)
		p.clock = t
		if !p.terminal {
			p.phase = p.computePhase()
		}
	}
	return time.Time{}
}

// ---- status rendering ----

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (p *podSim) containerStatus(c *simContainer, pendingReason string) map[string]any {
	st := map[string]any{
		"name":         c.name,
		"image":        c.image,
		"imageID":      "",
		"restartCount": c.restartCount,
		"ready":        c.st == csRunning,
		"started":      c.st == csRunning,
	}
	if c.everStarted {
		st["imageID"] = "sandbox.local/image@" + c.image
	}
	state := map[string]any{"waiting": nil, "running": nil, "terminated": nil}
	termMap := func(t *termination) map[string]any {
		m := map[string]any{
			"exitCode":    t.exitCode,
			"reason":      t.reason,
			"startedAt":   ts(t.startedAt),
			"finishedAt":  ts(t.finishedAt),
			"containerID": t.containerID,
		}
		if t.message != "" {
			m["message"] = t.message
		}
		return m
	}
	switch c.st {
	case csNotStarted:
		state["waiting"] = map[string]any{"reason": pendingReason}
	case csWaiting:
		state["waiting"] = map[string]any{"reason": c.waitReason, "message": c.waitMessage}
	case csRunning:
		state["running"] = map[string]any{"startedAt": ts(c.startedAt)}
		st["containerID"] = p.containerID(c)
	case csTerminated:
		state["terminated"] = termMap(c.term)
		st["containerID"] = c.term.containerID
	case csBackoff:
		state["waiting"] = map[string]any{
			"reason":  "CrashLoopBackOff",
			"message": fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", backoffFor(c.restartCount), c.name, p.name, p.ns, p.uid),
		}
		st["containerID"] = c.term.containerID
	}
	st["state"] = state
	last := map[string]any{}
	lt := c.lastTerm
	if c.st == csBackoff {
		lt = c.term
	}
	if lt != nil {
		last["terminated"] = termMap(lt)
	}
	st["lastState"] = last
	return st
}

func (p *podSim) setCond(t corev1.PodConditionType, s corev1.ConditionStatus) time.Time {
	old, ok := p.conditions[t]
	if !ok || old.status != s {
		at := p.clock
		if !ok {
			at = p.t0
		}
		p.conditions[t] = condState{status: s, since: at}
		return at
	}
	return old.since
}

// status renders the pod status patch body for the current state.
func (p *podSim) status(hostNetwork bool) map[string]any {
	var initSt, regSt []map[string]any
	var notInit, notReady []string
	for i, c := range p.init {
		reason := "PodInitializing"
		_ = i
		initSt = append(initSt, p.containerStatus(c, reason))
		if !p.initDone && !(c.st == csTerminated && c.term != nil && c.term.exitCode == 0) && !(c.sidecar && c.st == csRunning) {
			notInit = append(notInit, c.name)
		}
		if c.sidecar && c.st != csRunning {
			notReady = append(notReady, c.name)
		}
	}
	for _, c := range p.regular {
		reason := "ContainerCreating"
		if !p.initDone {
			reason = "PodInitializing"
		}
		regSt = append(regSt, p.containerStatus(c, reason))
		if c.st != csRunning {
			notReady = append(notReady, c.name)
		}
	}
	sort.Strings(notReady)
	conds := []map[string]any{}
	add := func(t corev1.PodConditionType, s corev1.ConditionStatus, reason, msg string) {
		since := p.setCond(t, s)
		m := map[string]any{"type": string(t), "status": string(s), "lastTransitionTime": ts(since), "lastProbeTime": nil}
		if reason != "" {
			m["reason"] = reason
		} else {
			m["reason"] = nil
		}
		if msg != "" {
			m["message"] = msg
		} else {
			m["message"] = nil
		}
		conds = append(conds, m)
	}
	ready := corev1.ConditionTrue
	if p.terminal {
		add(corev1.PodReadyToStartContainers, corev1.ConditionFalse, "", "")
	} else {
		add(corev1.PodReadyToStartContainers, corev1.ConditionTrue, "", "")
	}
	if p.initDone || len(notInit) == 0 {
		add(corev1.PodInitialized, corev1.ConditionTrue, "", "")
	} else {
		add(corev1.PodInitialized, corev1.ConditionFalse, "ContainersNotInitialized",
			fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(notInit, " ")))
	}
	switch {
	case p.terminal || p.phase == corev1.PodSucceeded || p.phase == corev1.PodFailed:
		ready = corev1.ConditionFalse
		add(corev1.ContainersReady, ready, "PodCompleted", "")
		add(corev1.PodReady, ready, "PodCompleted", "")
	case len(notReady) > 0:
		ready = corev1.ConditionFalse
		msg := fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " "))
		add(corev1.ContainersReady, ready, "ContainersNotReady", msg)
		add(corev1.PodReady, ready, "ContainersNotReady", msg)
	default:
		add(corev1.ContainersReady, ready, "", "")
		add(corev1.PodReady, ready, "", "")
	}
	st := map[string]any{
		"phase":                 string(p.phase),
		"conditions":            conds,
		"hostIP":                "127.0.0.1",
		"hostIPs":               []map[string]any{{"ip": "127.0.0.1"}},
		"startTime":             ts(p.t0),
		"containerStatuses":     regSt,
		"initContainerStatuses": initSt,
	}
	if initSt == nil {
		st["initContainerStatuses"] = nil
	}
	if p.reason != "" {
		st["reason"] = p.reason
		st["message"] = p.message
	}
	if hostNetwork {
		st["podIP"] = "127.0.0.1"
		st["podIPs"] = []map[string]any{{"ip": "127.0.0.1"}}
	}
	return st
}

// findContainer returns the simulated container of that name.
func (p *podSim) findContainer(name string) *simContainer {
	for _, c := range append(append([]*simContainer{}, p.init...), p.regular...) {
		if c.name == name {
			return c
		}
	}
	return nil
}
