module github.com/alpaca-go/alpaca

go 1.26.8

require github.com/klauspost/compress v1.20.4

require github.com/sashabaranov/go-openai v1.43.0 // indirect
