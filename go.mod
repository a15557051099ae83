module github.com/alpaca-go/alpaca

go 1.26.8

require github.com/klauspost/compress v1.20.4

require google.golang.org/protobuf v1.36.12 // indirect
