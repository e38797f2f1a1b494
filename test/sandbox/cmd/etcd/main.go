// Command etcd is the real etcd server (go.etcd.io/etcd/server/v3), built
// under the name "etcd" for the sandbox.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
