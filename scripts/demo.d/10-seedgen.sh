# seedgen demo (sourced by scripts/demo.sh with BIN and OUT set): start the
# teacher simulator on 127.0.0.1 with a free port, generate instructions
# from our small seed set into $OUT/generated.jsonl, stop the simulator.
# No network beyond 127.0.0.1, a second or two.
echo "== seedgen: self-instruct generation against teachersim" >&2
mkdir -p "$OUT"
rm -f "$OUT/generated.jsonl" "$OUT/generated.jsonl.state.json" "$OUT/teachersim.addr"
"$BIN/teachersim" --pool testdata/teachersim/pool.jsonl --addr 127.0.0.1:0 \
  --addr-file "$OUT/teachersim.addr" --error-rate 0.1 --retry-after 50ms --quiet &
seedgen_sim_pid=$!
for _ in $(seq 100); do [ -s "$OUT/teachersim.addr" ] && break; sleep 0.05; done
if [ ! -s "$OUT/teachersim.addr" ]; then
  kill "$seedgen_sim_pid" 2>/dev/null
  echo "seedgen demo: teachersim did not start" >&2
  return 1 2>/dev/null || exit 1
fi
seedgen_rc=0
OPENAI_API_KEY=demo "$BIN/seedgen" --base-url "http://$(cat "$OUT/teachersim.addr")/v1" --model teachersim \
  --seeds testdata/seedgen/seeds.jsonl --num-instructions 30 --retry-base 50ms \
  --cache "$OUT/seedgen-cache" -o "$OUT/generated.jsonl" || seedgen_rc=$?
kill "$seedgen_sim_pid" 2>/dev/null
wait "$seedgen_sim_pid" 2>/dev/null || true
rm -f "$OUT/teachersim.addr"
if [ "$seedgen_rc" != 0 ]; then
  echo "seedgen demo: seedgen failed ($seedgen_rc)" >&2
  return 1 2>/dev/null || exit 1
fi
echo "seedgen: $(wc -l < "$OUT/generated.jsonl") records in $OUT/generated.jsonl; first one:" >&2
head -n 1 "$OUT/generated.jsonl" | cut -c1-200 >&2
