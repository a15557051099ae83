// Package hardening holds tests that run several commands against the same
// hostile situations (docs/security.md); it has no code of its own.
package hardening
