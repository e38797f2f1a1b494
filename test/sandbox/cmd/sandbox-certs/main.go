// Command sandbox-certs writes the PKI and kubeconfigs of the sandbox control
// plane: a CA, the apiserver's serving certificate, client certificates for
// each part, the service-account signing key, and a kubeconfig per client.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

type pair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

var serial int64 = time.Now().UnixNano()

func newCert(tmpl *x509.Certificate, parent *pair) (*pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &pair{cert: cert, key: key, der: der}, nil
}

func certPEM(p *pair) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.der})
}

func keyPEM(p *pair) []byte {
	b, err := x509.MarshalECPrivateKey(p.key)
	must(err)
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b})
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-certs:", err)
		os.Exit(1)
	}
}

func write(dir, name string, data []byte) {
	must(os.WriteFile(filepath.Join(dir, name), data, 0o600))
}

func kubeconfig(server string, ca []byte, user string, cert, key []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: sandbox
  context:
    cluster: sandbox
    user: %s
    namespace: default
current-context: sandbox
`, server, b64(ca), user, b64(cert), b64(key), user))
}

func main() {
	dir := flag.String("dir", ".sandbox/pki", "where to write certificates and keys")
	kdir := flag.String("kubeconfig-dir", ".sandbox", "where to write kubeconfigs")
	server := flag.String("server", "https://127.0.0.1:26443", "apiserver URL for the kubeconfigs")
	flag.Parse()
	must(os.MkdirAll(*dir, 0o700))
	must(os.MkdirAll(*kdir, 0o700))

	ca, err := newCert(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "oz-worker-sandbox-ca"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
	}, nil)
	must(err)
	write(*dir, "ca.crt", certPEM(ca))
	write(*dir, "ca.key", keyPEM(ca))

	serving, err := newCert(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
	}, ca)
	must(err)
	write(*dir, "apiserver.crt", certPEM(serving))
	write(*dir, "apiserver.key", keyPEM(serving))

	clients := []struct{ file, cn, org string }{
		{"admin", "sandbox-admin", "system:masters"},
		{"controller-manager", "system:kube-controller-manager", ""},
		{"scheduler", "system:kube-scheduler", ""},
		{"sim", "sandbox-node-simulator", "system:masters"},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"},
	}
	for _, c := range clients {
		subj := pkix.Name{CommonName: c.cn}
		if c.org != "" {
			subj.Organization = []string{c.org}
		}
		p, err := newCert(&x509.Certificate{
			Subject:     subj,
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, ca)
		must(err)
		write(*dir, c.file+".crt", certPEM(p))
		write(*dir, c.file+".key", keyPEM(p))
		if c.file == "apiserver-kubelet-client" {
			continue
		}
		name := c.file + ".kubeconfig"
		if c.file == "admin" {
			name = "kubeconfig"
		}
		write(*kdir, name, kubeconfig(*server, certPEM(ca), c.cn, certPEM(p), keyPEM(p)))
	}

	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	write(*dir, "sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(sa)}))
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	must(err)
	write(*dir, "sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}
