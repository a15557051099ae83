module github.com/alpaca-go/alpaca

go 1.26.8

require github.com/klauspost/compress v1.20.4

require gonum.org/v1/gonum v0.17.0 // indirect
