module kgo/selftests/bench/go

go 1.23
