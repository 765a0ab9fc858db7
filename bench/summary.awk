# Prints bench/compare.sh's summary table from its results file (lines "KEY MEDIAN [MIN MAX]",
# milliseconds) and, when json is set, writes the same data there as JSON.
# Variables: runs, large (runs of the large cases), sizes (partition sizes), json (path or
# empty), date, kernel, host, commit.
{ v[$1] = $2; if (NF >= 4) { lo[$1] = $3; hi[$1] = $4 }; order[++nkeys] = $1 }
function has(k) { return (k in v) && v[k] != "" }
function ms(k) { return has(k) ? fmt(v[k]) : "-" }
function fmt(x) { return (x < 10 && x > -10) ? sprintf("%.2fms", x) : sprintf("%.1fms", x) }
function signed(x) { return (x < 0 ? "" : "+") fmt(x) }
function num(x) { return sprintf("%.3f", x) }
function span(k) { return (k in lo) ? sprintf("%s-%s", num1(lo[k]), num1(hi[k])) : "" }
function num1(x) { return (x < 10) ? sprintf("%.2f", x) : sprintf("%.1f", x) }
function ratio(b, p) { return (has(b) && has(p) && v[p] > 0) ? sprintf("%.1fx", v[b] / v[p]) : "-" }
function jstr(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
function line(op, bl, b, p, rp, l, rl, t, res) {
	printf "%-36s %-30s %10s %12s %8s %12s %8s  %-14s %s\n", op, bl, b, p, rp, l, rl, t, res
	if (op == "operation") return
	rows = rows (rows == "" ? "" : ",\n") sprintf("    {\"operation\": %s, \"baseline\": %s, \"baseline_ms\": %s, \"proc_ms\": %s, \"proc_ratio\": %s, \"lib_ms\": %s, \"lib_ratio\": %s, \"target\": %s, \"result\": %s}",
		jstr(op), jstr(bl), jstr(b), jstr(p), jstr(rp), jstr(l), jstr(rl), jstr(t), jstr(res))
}
# spans(B, P, L): the min-max line under a row whose cells are the keys B, P and L.
function spans(b, p, l) {
	if (span(b) span(p) span(l) == "") return
	printf "%-36s %-30s %10s %12s %8s %12s %8s\n", "", "  min-max", span(b), span(p), "", span(l), ""
}
# judge(WHO, OK): "WHO met" / "WHO not met", joined with ", " onto result.
function judge(who, ok) { result = result (result == "" ? "" : ", ") who (ok ? " met" : " not met") }
# measured(KEY): whether the run has any cell of the row KEY (ONLY may have left it out).
function measured(key) { return has(key ".base") || has(key ".proc") || has(key ".lib") }
# A row whose target is a minimum speed-up (baseline / pontoon).
function speedup(op, bl, key, t) {
	if (!measured(key)) return
	result = ""
	if (has(key ".base") && has(key ".proc")) judge("proc", v[key ".base"] / v[key ".proc"] >= t)
	if (has(key ".base") && has(key ".lib")) judge("lib", v[key ".base"] / v[key ".lib"] >= t)
	line(op, bl, ms(key ".base"), ms(key ".proc"), ratio(key ".base", key ".proc"), ms(key ".lib"), ratio(key ".base", key ".lib"), ">= " t "x", result)
	spans(key ".base", key ".proc", key ".lib")
}
# A row without a target, or with a maximum for the library median (maxlib > 0).
function plain(op, bl, key, maxlib) {
	if (!measured(key)) return
	result = "-"
	if (maxlib > 0 && has(key ".lib")) { result = ""; judge("lib", v[key ".lib"] < maxlib) }
	line(op, bl, ms(key ".base"), ms(key ".proc"), ratio(key ".base", key ".proc"), ms(key ".lib"), ratio(key ".base", key ".lib"), maxlib > 0 ? "< " maxlib "ms (lib)" : "-", result)
	spans(key ".base", key ".proc", key ".lib")
}
# A row whose target is a maximum slow-down against a trivial binary (bench/cmd/trivial): the
# ratio is pontoon / trivial, unlike the other rows.
function times(op, bl, b, p, t) {
	result = "-"
	if (has(b) && has(p) && v[b] > 0) { result = ""; judge("proc", v[p] / v[b] <= t) }
	line(op, bl, ms(b), ms(p), (has(b) && has(p) && v[b] > 0) ? sprintf("%.1fx", v[p] / v[b]) : "-", "-", "-", "<= " t "x trivial", result)
	spans(b, p, "")
}
# growth(TITLE, PREFIX, LIST): one row per size in LIST of the in-process medians PREFIX<size>,
# with the ratio to the smallest size.
function growth(title, prefix, list,   n, sz, i, k, first, r) {
	n = split(list, sz, " ")
	first = prefix sz[1]
	for (i = 1; i <= n; i++) {
		k = prefix sz[i]
		if (!has(k)) continue
		r = (has(first) && v[first] > 0) ? sprintf("%.2fx", v[k] / v[first]) : "-"
		printf "%-36s %8s %12s %18s %10s\n", (i == 1 ? title : ""), sz[i], fmt(v[k]), span(k), r
		grows = grows (grows == "" ? "" : ",\n") sprintf("    {\"series\": %s, \"size\": %d, \"median_ms\": %s, \"min_ms\": %s, \"max_ms\": %s, \"ratio_to_smallest\": %s}",
			jstr(title), sz[i], num(v[k]), (k in lo) ? num(lo[k]) : "null", (k in hi) ? num(hi[k]) : "null", (r == "-") ? "null" : sprintf("%.3f", v[k] / v[first]))
	}
}
END {
	line("operation", "baseline", "baseline", "pontoon/proc", "ratio", "pontoon/lib", "ratio", "target", "result")
	if (has("start.base")) {
		times("command-line start: --help", "trivial static Go binary", "start.base", "start.proc", 1.5)
		times("command-line start: bridge list", "trivial static Go binary", "start.base", "start.list", 1.5)
		# Not pontoon: what the command-line module itself costs, for the two rows above.
		if (has("start.cli")) {
			line("  urfave/cli/v2 program, --help", "trivial static Go binary", ms("start.base"), ms("start.cli"), ratio("start.cli", "start.base"), "-", "-", "-", "-")
			spans("start.base", "start.cli", "")
		}
	}
	speedup("bridge + 3 guests + ping", "shell_chain.sh 3", "bridge3", 10)
	# The same work as a user types it: 6 pontoon commands (bench/cli_chain.sh).
	if (has("bridge3.cli")) {
		result = ""
		if (has("bridge3.base")) judge("cli", v["bridge3.base"] / v["bridge3.cli"] >= 10)
		line("  by 6 pontoon commands", "shell_chain.sh 3", ms("bridge3.base"), ms("bridge3.cli"), ratio("bridge3.base", "bridge3.cli"), "-", "-", ">= 10x", result)
		spans("bridge3.base", "bridge3.cli", "")
		# What 6 commands cannot go below: 6 starts of the trivial binary and the chain's work
		# in one warm process.
		if (has("start.base") && has("bridge3.lib")) {
			fl = 6 * v["start.base"] + v["bridge3.lib"]
			line("  floor: 6 trivial starts + lib", "shell_chain.sh 3", ms("bridge3.base"), fmt(fl), has("bridge3.base") ? sprintf("%.1fx", v["bridge3.base"] / fl) : "-", "-", "-", "-", "-")
		}
	}
	plain("bridge + 10 guests + ping", "shell_chain.sh 10", "bridge10", 0)
	if (has("teardown.base") || has("teardown.cli")) {
		line("  rtnl held after destroy (kernel)", "shell_chain.sh 3", ms("teardown.base"), ms("teardown.cli"), ratio("teardown.base", "teardown.cli"), "-", "-", "-", "-")
		spans("teardown.base", "teardown.cli", "")
	}
	if (has("attach.base")) speedup("guest attach + detach", "cni_bridge.sh", "attach", 20)
	n = split(sizes, sz, " ")
	for (i = 1; i <= n; i++) plain("partition apply, " sz[i] " guests", "iptables_per_guest.sh apply " sz[i], "apply" sz[i], sz[i] == 16 ? 2 : 0)
	for (i = 1; i <= n; i++) plain("partition heal, " sz[i] " guests", "iptables_per_guest.sh heal " sz[i], "heal" sz[i], 0)
	plain("random-halves, 253 guests", "-", "halves253", 0)
	# Timed side by side with the trivial binary (bench/cmd/interleave).
	if (has("change16.base")) {
		times("partition isolate, 16 guests", "trivial static Go binary", "change16.base", "change16.isolate", 3)
		times("partition heal, 16 guests", "trivial static Go binary", "change16.base", "change16.heal", 3)
		times("isolate after isolate, 16 guests", "trivial static Go binary", "change16.base", "change16.reapply", 3)
	}
	# The hook rows: the pontoon columns are what the hook adds to the same container.
	if (has("ctr.gostartadded")) {
		result = ""
		judge("proc", v["ctr.gostartadded"] <= 3)
		line("container start to first output", "runc run, no network", ms("ctr.gostart"), signed(v["ctr.gostartadded"]), "-", "-", "-", "<= 3ms added", result)
	}
	# The hook's own process, timed alone (chainbench -op hook): what the row above adds, but
	# the engine's part, measured without the noise of a container start around it.
	if (has("ctr.hookproc")) {
		line("  the hook's process alone", "-", "-", "+" ms("ctr.hookproc"), "-", "-", "-", "-", "-")
		spans("", "ctr.hookproc", "")
	}
	# The kernel's part of the hook's attach alone, in a Go process of its own
	# (bench/cmd/floorhook): the least a hook that is one process adds here.
	if (has("ctr.floorhook")) {
		line("  floor: kernel work, one process", "-", "-", "+" ms("ctr.floorhook"), "-", "-", "-", "-", has("ctr.hookproc") ? sprintf("hook/floor %.2fx", v["ctr.hookproc"] / v["ctr.floorhook"]) : "-")
		spans("", "ctr.floorhook", "")
	}
	# Start to exit also counts the poststop hook's detach, which the start target leaves out.
	added = has("ctr.hook") && has("ctr.none") ? v["ctr.hook"] - v["ctr.none"] : ""
	if (has("ctr.none") || has("ctr.goadded")) line("container run, start to exit", "runc run, no network", ms("ctr.none"),
		added != "" ? signed(added) : "-", "-", has("ctr.goadded") ? signed(v["ctr.goadded"]) : "-", "-", "-", "-")
	spans("ctr.none", "ctr.hook", "")
	if (has("ctr.cni")) {
		line("container with bridge network", "runc run + CNI bridge plugin", ms("ctr.cni"), ms("ctr.hook"), ratio("ctr.cni", "ctr.hook"), "-", "-", "-", "-")
		spans("ctr.cni", "ctr.hook", "")
		r = (added != "" && added > 0) ? sprintf("%.1fx", (v["ctr.cni"] - v["ctr.none"]) / added) : "-"
		line("  of which networking", "CNI bridge plugin", signed(v["ctr.cni"] - v["ctr.none"]), added != "" ? signed(added) : "-", r, "-", "-", "-", "-")
	}
	if (has("trio.base")) {
		speedup("run 3 children until all reach", "podman + netavark", "trio", 10)
	}
	if (has("pctr.none")) {
		line("podman run, no network", "podman --network none", ms("pctr.none"), "-", "-", "-", "-", "-", "-")
		spans("pctr.none", "", "")
		line("podman run with a network", "podman on netavark", ms("pctr.net"), ms("pctr.hook"), ratio("pctr.net", "pctr.hook"), "-", "-", "-", "-")
		spans("pctr.net", "pctr.hook", "")
		if (has("pctr.net") && has("pctr.hook")) {
			pn = v["pctr.net"] - v["pctr.none"]; ph = v["pctr.hook"] - v["pctr.none"]
			line("  of which networking", "netavark", signed(pn), signed(ph), (ph > 0) ? sprintf("%.1fx", pn / ph) : "-", "-", "-", "-", "-")
		}
	}
	if (has("run3.lib")) line("pontoon run: 3 children reachable", "-", "-", "-", "-", ms("run3.lib"), "-", "-", "-")
	# PONTOON_BEFORE: the same commands with the other binary, timed in the same run.
	nb = split("--help|bridge list|partition isolate, 16 guests|partition heal, 16 guests|isolate after isolate, 16 guests", bname, "|")
	split("start.before|start.beforelist|change16.before_isolate|change16.before_heal|change16.before_reapply", bkey, "|")
	split("start.proc|start.list|change16.isolate|change16.heal|change16.reapply", akey, "|")
	header = 0
	for (i = 1; i <= nb; i++) {
		if (!has(bkey[i]) || !has(akey[i]) || v[akey[i]] <= 0) continue
		if (!header++) printf "\n%-36s %12s %12s %10s\n", "PONTOON_BEFORE vs this pontoon", "before", "after", "before/after"
		printf "%-36s %12s %12s %9.2fx\n", bname[i], fmt(v[bkey[i]]), fmt(v[akey[i]]), v[bkey[i]] / v[akey[i]]
	}
	printf "\nmedians of %d runs (%d for 64 and 253 guests); ratio = baseline / pontoon (rows against the trivial binary:\n", runs, large
	print "  pontoon / trivial); min-max under each row."
	print "pontoon/proc: a process per operation (chainbench, the pontoon command line, runc or podman with the pontoon"
	print "  binary as hook, pontoon run); \"by 6 pontoon commands\": bridge create, 3 guest add, exec ping, bridge destroy"
	print "  (bench/cli_chain.sh, one process each, the name server started and stopped as a user's bridge has it)."
	print "  Chains run in turn, each after the kernel has removed the previous one's namespaces. \"rtnl held after"
	print "  destroy\": the time a netlink request made just after a chain waits for the kernel's removal of its"
	print "  namespaces (a bridge device's costs an rcu_barrier under the lock), summed over 400 ms."
	print "  pontoon/lib: in-process library calls (chainbench). Container start to first output, and pontoon/lib of"
	print "  start to exit: the runtime Go benchmark (runc driven from Go, the pontoon binary as hook, runs alternated"
	print "  and spaced; added = over the same container without network). Other container rows: runc run / podman"
	print "  run --rm of a busybox true."
	print "  3 children: pontoon run of a pontoon.toml vs podman network create + 3 podman run -d with fixed IPs +"
	print "  podman wait + rm + network rm; each child pings all three, then waits until all have (bench/trio/child.sh)."
	print "  The 3-children and podman rows run their commands in turn (one run of each, then the next round)."
	print ""
	printf "%-36s %8s %12s %18s %10s\n", "growth (pontoon/lib, in-process)", "size", "median", "min-max", "ratio"
	growth("attach of the Nth guest of a bridge", "grow.attach", "10 50 200")
	growth("  floor: the kernel's part alone", "grow.floor", "10 50 200")
	growth("creation of the Nth bridge", "grow.bridges", "10 100")
	growth("partition apply (isolate), N guests", "grow.apply", "10 50 253")
	print "ratio = median / median of the smallest size (1.00x: flat). Floor rows: pontoon's attach without its records,"
	print "  lock, namespace checks, port-name look-up and announcement: its other requests to the kernel, in its order,"
	print "  through its kernel layer (bench/internal/floor). \"hook/floor\": the hook's process / the floor's."
	if (json == "") exit
	printf "{\n  \"date\": %s,\n  \"host\": %s,\n  \"kernel\": %s,\n  \"commit\": %s,\n  \"runs\": %d,\n  \"runs_large\": %d,\n", jstr(date), jstr(host), jstr(kernel), jstr(commit), runs, large >json
	printf "  \"measurements_ms\": {\n" >json
	for (i = 1; i <= nkeys; i++) {
		k = order[i]
		if (seen[k]++) continue
		printf "%s    %s: {\"median\": %s, \"min\": %s, \"max\": %s}", (i == 1 ? "" : ",\n"), jstr(k), num(v[k]), (k in lo) ? num(lo[k]) : "null", (k in hi) ? num(hi[k]) : "null" >json
	}
	printf "\n  },\n  \"table\": [\n%s\n  ],\n  \"growth\": [\n%s\n  ]\n}\n", rows, grows >json
	close(json)
}
