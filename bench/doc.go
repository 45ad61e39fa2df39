// Package bench holds the benchmarks of liverelay's media path that need
// real peers. BenchmarkLiveRelay runs relay.Supervisors in process against
// nginx-rtmp, so the relay can be profiled with the go tool:
//
//	go test ./bench -run '^$' -bench LiveRelay -benchtime 20000x \
//	    -cpuprofile cpu.out -memprofile mem.out [-relays 10]
//	go tool pprof -top bench.test cpu.out
//
// The whole-service comparison with ffmpeg is the program in relaybench.
package bench
