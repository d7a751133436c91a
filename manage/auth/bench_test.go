package auth

import "testing"

func BenchmarkHashPasswordDefault(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword("correct horse battery", DefaultPasswordParams); err != nil {
			b.Fatal(err)
		}
	}
}
