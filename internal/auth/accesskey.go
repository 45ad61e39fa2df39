package auth

import "crypto/rand"

const (
	accessKeyLen = 20
	secretKeyLen = 40

	accessKeyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	secretKeyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// NewAccessKey returns a new access key (20 uppercase letters and digits)
// and its secret (40 letters and digits), both from crypto/rand. The secret
// is shown to its owner once and stored only sealed (Keyring.Seal).
func NewAccessKey() (ak, sk string) {
	return randomString(accessKeyAlphabet, accessKeyLen), randomString(secretKeyAlphabet, secretKeyLen)
}

// randomString draws n characters uniformly from alphabet, rejecting the
// random bytes that would bias the choice.
func randomString(alphabet string, n int) string {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		rand.Read(buf)
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, alphabet[int(b)%len(alphabet)])
			if len(out) == n {
				break
			}
		}
	}
	return string(out)
}
