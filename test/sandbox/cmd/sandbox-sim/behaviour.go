package main

import (
	"strconv"
	"strings"
	"time"
)

// kind is what a simulated container does, chosen by its image tag
// (see the behaviour table in docs/sandbox.md).
type kind int

const (
	kindRun          kind = iota // runs for a while, then exits with exitCode
	kindOOM                      // runs about 1 s, then OOMKilled (137)
	kindPullError                // waiting ErrImagePull, then ImagePullBackOff
	kindInvalidImage             // waiting InvalidImageName
	kindConfigError              // waiting CreateContainerConfigError
)

// behaviour is the scripted life of one container.
type behaviour struct {
	kind     kind
	duration time.Duration // how long it runs (kindRun, kindOOM)
	exitCode int32
	// untagged marks an image whose tag has no meaning to the sandbox; under
	// restartPolicy Always such a container runs until the pod is deleted
	// (a Deployment's server), otherwise it exits 0 after about 1 s.
	untagged bool
}

// defaultRun is how long an ordinary container runs.
const defaultRun = time.Second

// imageTag returns the tag of an image reference ("" when there is none).
func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon > slash {
		return image[colon+1:]
	}
	return ""
}

// behaviourOf maps an image to its scripted behaviour.
func behaviourOf(image string) behaviour {
	tag := imageTag(image)
	switch {
	case tag == "oom":
		return behaviour{kind: kindOOM, duration: defaultRun, exitCode: 137}
	case tag == "pull-error":
		return behaviour{kind: kindPullError}
	case tag == "invalid-image":
		return behaviour{kind: kindInvalidImage}
	case tag == "config-error":
		return behaviour{kind: kindConfigError}
	case strings.HasPrefix(tag, "exit-"):
		if n, err := strconv.ParseInt(strings.TrimPrefix(tag, "exit-"), 10, 32); err == nil && n >= 0 && n <= 255 {
			return behaviour{kind: kindRun, duration: defaultRun, exitCode: int32(n)}
		}
	case strings.HasPrefix(tag, "sleep-"):
		if s, err := strconv.ParseFloat(strings.TrimPrefix(tag, "sleep-"), 64); err == nil && s >= 0 {
			return behaviour{kind: kindRun, duration: time.Duration(s * float64(time.Second))}
		}
	}
	return behaviour{kind: kindRun, duration: defaultRun, untagged: true}
}

// neverStarts reports whether the container stays waiting forever.
func (b behaviour) neverStarts() bool {
	return b.kind == kindPullError || b.kind == kindInvalidImage || b.kind == kindConfigError
}
