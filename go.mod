module github.com/alpaca-go/alpaca

go 1.26.8

require github.com/klauspost/compress v1.20.4

require github.com/x448/float16 v0.8.4
