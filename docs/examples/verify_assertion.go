// Verifies wizbrand's X-Wizbrand-Assertion in a Go app behind the gate
// (github.com/golang-jwt/jwt/v5 and github.com/MicahParks/keyfunc/v3).
package main

import (
	"fmt"
	"net/http"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

func main() {
	// Fetched once, refreshed in the background and on an unknown kid.
	jwks, err := keyfunc.NewDefault([]string{"http://wizbrand.internal:8080/.well-known/jwks.json"})
	if err != nil {
		panic(err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		token, err := jwt.Parse(r.Header.Get("X-Wizbrand-Assertion"), jwks.Keyfunc,
			jwt.WithValidMethods([]string{"ES256", "EdDSA"}),
			jwt.WithAudience("acme.seo.example.com"), // this app's own host
			jwt.WithIssuer("https://auth.example.com"), // WIZBRAND_PUBLIC_URL
			jwt.WithExpirationRequired())
		if err != nil {
			http.Error(w, "not through the gate", http.StatusUnauthorized)
			return
		}
		claims := token.Claims.(jwt.MapClaims)
		fmt.Fprintf(w, "hello %v of %v (%v)\n", claims["sub"], claims["org_slug"], claims["roles"])
	})
	panic(http.ListenAndServe(":8091", nil))
}
