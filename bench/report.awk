# bench/report.awk: the table (stdout) and the JSON file (-v json=FILE) of
# bench/run.sh, from its results: lines "scenario|tunnel|key|value".
# POSIX awk (mawk is enough).  Run by bench/run.sh with -F'|' and the
# run's parameters as -v variables.

function human(b) {
	if (b >= 1073741824 && b % 1073741824 == 0) return (b / 1073741824 " GiB")
	if (b >= 1048576 && b % 1048576 == 0) return (b / 1048576 " MiB")
	return (b " B")
}

# row(SCENARIO, KEY, LABEL, UNIT, DIV, FMT, TARGETS[, RKEY]): one table
# row; TARGETS is ";"-separated conditions on mxd's value,
# "ratio:OTHER:OP:X" (mxd/OTHER) or "abs:OP:X" (in the row's unit).  With
# RKEY the ratio columns divide mxd's KEY by the other tunnel's RKEY.
function row(sc, key, label, unit, div, fmt, targets, rkey) {
	nrows++
	R_sc[nrows] = sc; R_key[nrows] = key; R_label[nrows] = label
	R_unit[nrows] = unit; R_div[nrows] = div; R_fmt[nrows] = fmt
	R_tg[nrows] = targets; R_rk[nrows] = rkey == "" ? key : rkey
}

function has(sc, t, key) { return ((sc SUBSEP t SUBSEP key) in V) }
function val(sc, t, key) { return (V[sc, t, key] / 1) }

function cell(i, t,    group) {
	if (has(R_sc[i], t, R_key[i]))
		return (sprintf(R_fmt[i], val(R_sc[i], t, R_key[i]) / R_div[i]))
	group = R_sc[i]
	sub(/_(base|bulk)$/, "", group)
	if (group == "cpu") group = "bulk"
	if (has(R_sc[i], t, "failed") || has(group, t, "failed") ||
	    (R_sc[i] ~ /^hol_lo|^bulk|^parallel|^connrate|^cpu/ && has("start", t, "failed")))
		return ("FAIL")
	return ("-")
}

# A ratio's OTHER is a tunnel, mxd's value over its, or "A/B", A's over
# B's (mxd-tls/ssh): sets P_num and P_den.
function pair(other) {
	P_num = "mxd"; P_den = other
	if (other ~ /\//) { P_num = other; sub(/\/.*/, "", P_num); sub(/.*\//, "", P_den) }
}

function ratio(i, other,    a, b) {
	pair(other)
	if (!has(R_sc[i], P_num, R_key[i]) || !has(R_sc[i], P_den, R_rk[i]))
		return ("")
	a = val(R_sc[i], P_num, R_key[i]); b = val(R_sc[i], P_den, R_rk[i])
	if (b == 0) return ("")
	return (a / b)
}

# The ratio cell of row i against OTHER (none for "%" rows: those are
# about the load generator and the targets, not the tunnels).
function rcell(i, other,    x) {
	if (R_unit[i] == "%") return ("")
	x = ratio(i, other)
	if (x == "") return ("")
	if (x < 0.01) return ("<0.01x")
	return (sprintf(x < 10 ? "%.2fx" : "%.1fx", x))
}

function cmp(x, op, y) {
	if (op == ">=") return (x >= y)
	if (op == "<=") return (x <= y)
	if (op == ">") return (x > y)
	return (x < y)
}

# Evaluate row i's targets: sets T_text, T_verdict; appends to the JSON list.
function targets(i,    n, c, k, f, x, met, ok, all, txt, known, desc, op, lim) {
	T_text = ""; T_verdict = ""
	if (R_tg[i] == "") return
	n = split(R_tg[i], c, ";")
	all = 1; known = 1
	for (k = 1; k <= n; k++) {
		split(c[k], f, ":")
		if (f[1] == "ratio") {
			op = f[3]; lim = f[4]
			x = ratio(i, f[2])	# sets P_num, P_den
			txt = (P_num == "mxd" ? "" : P_num " ") op lim "x " P_den
			desc = P_num "/" P_den " " op " " lim
			# NUM OP lim x DEN, which holds against a zero too
			met = ""
			if (has(R_sc[i], P_num, R_key[i]) && has(R_sc[i], P_den, R_rk[i]))
				met = cmp(val(R_sc[i], P_num, R_key[i]), op, lim * val(R_sc[i], P_den, R_rk[i]))
		} else {
			op = f[2]; lim = f[3]
			txt = op lim " " R_unit[i]
			desc = "mxd " op " " lim " " R_unit[i]
			x = has(R_sc[i], "mxd", R_key[i]) ? val(R_sc[i], "mxd", R_key[i]) / R_div[i] : ""
			met = x == "" ? "" : cmp(x, op, lim + 0)
		}
		T_text = T_text (T_text == "" ? "" : ", ") txt
		if (met == "") { known = 0; ok = "null" }
		else { ok = met ? "true" : "false"; if (!met) all = 0 }
		ntg++
		TG[ntg] = sprintf("{\"scenario\": \"%s\", \"metric\": \"%s\", \"goal\": \"%s\", \"value\": %s, \"met\": %s}",
		    R_sc[i], R_key[i], desc, x == "" ? "null" : sprintf("%.4g", x), ok)
	}
	T_verdict = !known ? "?" : all ? "met" : "NOT met"
}

# table(FROM, TO, TUNNELS, OTHERS): print rows FROM..TO (those with a
# value) with a column per tunnel of TUNNELS and a ratio column mxd/OTHER
# per tunnel of OTHERS (space-separated lists).
function table(from, to, tl, ol,    TT, OO, nt, no, i, k, shown, line) {
	nt = split(tl, TT, " "); no = split(ol, OO, " ")
	shown = 0
	for (i = from; i <= to; i++)
		for (k = 1; k <= nt; k++) if (cell(i, TT[k]) != "-") shown = 1
	if (!shown) return
	printf "%-" lw "s %-7s", "scenario", "unit"
	for (k = 1; k <= nt; k++) printf " %" cw "s", TT[k]
	for (k = 1; k <= no; k++) printf " %9s", (OO[k] ~ /\// ? "" : "mxd/") OO[k]
	printf "  %s\n", "target (mxd)"
	for (i = from; i <= to; i++) {
		shown = 0
		for (k = 1; k <= nt; k++) if (cell(i, TT[k]) != "-") shown = 1
		if (!shown) continue
		line = sprintf("%-" lw "s %-7s", R_label[i], R_unit[i])
		for (k = 1; k <= nt; k++) line = line sprintf(" %" cw "s", cell(i, TT[k]))
		for (k = 1; k <= no; k++) line = line sprintf(" %9s", rcell(i, OO[k]))
		targets(i)
		if (T_text != "") line = line sprintf("  %s: %s", T_text, T_verdict)
		sub(/ +$/, "", line)
		print line
	}
}

function sep(c, s) { return (c ? s : "") }

function jstr(s) {
	gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, " ", s)
	return ("\"" s "\"")
}

# A key recorded more than once (BENCH_REPS) is reported as the median of
# its runs; the runs themselves go to the JSON file as KEY_runs.
{
	if (($1 SUBSEP $2 SUBSEP $3) in NRUN) {
		NRUN[$1, $2, $3]++
		RUNS[$1, $2, $3] = RUNS[$1, $2, $3] " " $4
	} else {
		NRUN[$1, $2, $3] = 1
		RUNS[$1, $2, $3] = $4
	}
	V[$1, $2, $3] = $4
	if (!(($1) in SC)) { SC[$1] = 1; sclist[++nsc] = $1 }
	if ($1 == "hol_shaped_bulk" && $3 == "bulk_mbps" && link_bps > 0)
		V[$1, $2, "link_pct"] = $4 * 1e6 / link_bps * 100
}

function median(list,    n, x, i, j, t) {
	n = split(list, x, " ")
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && x[j - 1] + 0 > x[j] + 0; j--) {
			t = x[j]; x[j] = x[j - 1]; x[j - 1] = t
		}
	return (n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2)
}

END {
	for (key in NRUN)
		if (NRUN[key] > 1) {
			V[key] = median(RUNS[key])
			MULTI[key] = 1
		}
	# KEY_full: the rate over the machine's busy share, what the tunnel
	# would reach with every CPU busy at the CPU cost it had.
	nfull = 0
	for (key in V) {
		split(key, p, SUBSEP)
		if (p[3] != "machine_busy_pct" || V[key] <= 0) continue
		r = p[1] == "connrate" ? "cps" : "mbps"
		if (!has(p[1], p[2], r)) continue
		FK[++nfull] = p[1] SUBSEP p[2] SUBSEP r "_full"
		FV[nfull] = val(p[1], p[2], r) * 100 / V[key]
	}
	for (k = 1; k <= nfull; k++) V[FK[k]] = FV[k]
	# own_KEY: a tunnel's machine CPU beyond the direct column's, which is
	# the load generator and the targets: what the tunnel itself costs,
	# its processes and the kernel work of the hops it adds.
	nown = 0
	for (key in V) {
		split(key, p, SUBSEP)
		if (p[3] !~ /^machine_(s_per_gib|us_per_conn)$/ || p[2] == "direct" ||
		    !has(p[1], "direct", p[3]))
			continue
		FK[++nown] = p[1] SUBSEP p[2] SUBSEP "own_" p[3]
		FV[nown] = V[key] - val(p[1], "direct", p[3])
	}
	for (k = 1; k <= nown; k++) V[FK[k]] = FV[k]
	# p99_over_us: the WAN echo's p99 beside the download over its p50
	# alone, the round trip the download adds.
	nover = 0
	for (key in V) {
		split(key, p, SUBSEP)
		if (p[1] !~ /^wan_/ || p[3] != "p99_us" || !has(p[1], p[2], "alone_p50_us"))
			continue
		FK[++nover] = p[1] SUBSEP p[2] SUBSEP "p99_over_us"
		FV[nover] = V[key] - val(p[1], p[2], "alone_p50_us")
	}
	for (k = 1; k <= nover; k++) V[FK[k]] = FV[k]
	nt = split(tunnels, T, " ")
	haveso = haveya = havefl = 0
	haveti = havess = 0
	for (k = 1; k <= nt; k++) { if (T[k] == "socat") haveso = 1; if (T[k] == "yamux") haveya = 1; if (T[k] == "floor") havefl = 1
		if (T[k] == "mxd-tls") haveti = 1; if (T[k] == "ssh") havess = 1 }

	row("bulk", "mbps", "bulk, 1 conn x " human(bulk_bytes), "MB/s", 1, "%.0f", "ratio:socat:>=:1.3;ratio:yamux:>=:2;ratio:mxd-tls/mxd:>=:0.8;ratio:mxd-tls/ssh:>=:1.5")
	row("bulk", "loadgen_cpu_pct", "  load generator CPU", "%", 1, "%.0f", "")
	row("bulk", "targets_cpu_pct", "  target server CPU", "%", 1, "%.0f", "")
	row("bulk", "machine_busy_pct", "  machine busy (all CPUs)", "%", 1, "%.0f", "")
	row("bulk", "machine_s_per_gib", "  machine CPU per GiB", "s/GiB", 1, "%.2f", "")
	row("bulk", "own_machine_s_per_gib", "    of it the tunnel's own", "s/GiB", 1, "%.2f", "")
	row("bulk", "mbps_full", "  at every CPU busy (bound)", "MB/s", 1, "%.0f", "", "mbps")
	row("parallel", "mbps", "parallel, " par_conns " x " human(par_bytes), "MB/s", 1, "%.0f", "ratio:socat:>=:1.3;ratio:yamux:>=:2")
	row("parallel", "machine_busy_pct", "  machine busy (all CPUs)", "%", 1, "%.0f", "")
	row("parallel", "machine_s_per_gib", "  machine CPU per GiB", "s/GiB", 1, "%.2f", "")
	row("parallel", "own_machine_s_per_gib", "    of it the tunnel's own", "s/GiB", 1, "%.2f", "")
	row("parallel", "mbps_full", "  at every CPU busy (bound)", "MB/s", 1, "%.0f", "", "mbps")
	row("connrate", "cps", "connrate, " rate_count " conns, " rate_inflight " in flight", "conn/s", 1, "%.0f", "ratio:socat:>=:5;ratio:yamux:>=:2")
	row("connrate", "p50_us", "  connect+echo p50", "ms", 1000, "%.2f", "")
	row("connrate", "p99_us", "  connect+echo p99", "ms", 1000, "%.2f", "")
	row("connrate", "machine_busy_pct", "  machine busy (all CPUs)", "%", 1, "%.0f", "")
	row("connrate", "machine_us_per_conn", "  machine CPU per connection", "us", 1, "%.0f", "")
	row("connrate", "own_machine_us_per_conn", "    of it the tunnel's own", "us", 1, "%.0f", "")
	row("connrate", "cps_full", "  at every CPU busy (bound)", "conn/s", 1, "%.0f", "", "cps")
	row("hol_lo_base", "p50_us", "hol loopback, alone: p50", "ms", 1000, "%.3f", "")
	row("hol_lo_base", "p99_us", "  p99", "ms", 1000, "%.3f", "")
	row("hol_lo_base", "max_us", "  max", "ms", 1000, "%.3f", "")
	row("hol_lo_bulk", "p50_us", "hol loopback, beside bulk: p50", "ms", 1000, "%.3f", "")
	row("hol_lo_bulk", "p99_us", "  p99", "ms", 1000, "%.3f", "")
	row("hol_lo_bulk", "max_us", "  max", "ms", 1000, "%.3f", "")
	row("hol_lo_bulk", "bulk_mbps", "  the bulk channel", "MB/s", 1, "%.0f", "")
	row("hol_shaped_base", "p50_us", "hol shaped, alone: p50", "ms", 1000, "%.3f", "")
	row("hol_shaped_base", "p99_us", "  p99", "ms", 1000, "%.3f", "")
	row("hol_shaped_base", "max_us", "  max", "ms", 1000, "%.3f", "")
	row("hol_shaped_bulk", "p50_us", "hol shaped, beside bulk: p50", "ms", 1000, "%.3f", "")
	row("hol_shaped_bulk", "p99_us", "  p99", "ms", 1000, "%.3f", "abs:<=:5")
	row("hol_shaped_bulk", "max_us", "  max", "ms", 1000, "%.3f", "")
	row("hol_shaped_bulk", "link_pct", "  the bulk channel", "% link", 1, "%.1f", "abs:>=:90")
	row("idle", "bytes_per_chan", "idle channels: RSS", "B/chan", 1, "%.0f", "abs:<=:2048")
	row("cpu", "s_per_gib", "cpu (during bulk)", "s/GiB", 1, "%.2f", "ratio:socat:<=:1.0")
	nmain = nrows

	# The WAN section: a block per congestion control and link that ran.
	wan_tunnels = wan_others = ""
	for (k = 1; k <= nt; k++)
		if (T[k] == "direct" || T[k] == "yamux" || T[k] == "mxd")
			wan_tunnels = wan_tunnels " " T[k]
	if (wan_tunnels ~ /direct/) wan_others = "direct"
	if (wan_tunnels ~ /yamux/) wan_others = wan_others " yamux"
	ncc = split(wan_ccs, WC, " "); nln = split(wan_links, WL, " ")
	for (a = 1; a <= ncc; a++)
		for (b = 1; b <= nln; b++) {
			split(WL[b], f, ":")
			sc = "wan_" WC[a] "_" f[1] "_" f[2]
			if (!(sc in SC)) continue
			lbl = WC[a] ", " (f[1] % 1000 == 0 ? f[1] / 1000 " Gbit/s" : f[1] " Mbit/s") ", " f[2] " % loss"
			row(sc, "bulk_mbps", lbl ": download", "MB/s", 1, "%.1f", "ratio:direct:>=:0.95")
			row(sc, "link_pct", "  the download", "% link", 1, "%.1f", "abs:>=:90")
			row(sc, "alone_p50_us", "  echo alone: p50", "ms", 1000, "%.1f", "")
			row(sc, "p50_us", "  echo beside the download: p50", "ms", 1000, "%.1f", "")
			row(sc, "p99_us", "  p99", "ms", 1000, "%.1f", "ratio:direct:<=:1")
			row(sc, "p99_over_us", "  p99 over the echo alone", "ms", 1000, "%.1f", f[2] == 0 ? "abs:<=:20" : "")
			row(sc, "drop_pct", "  dropped at the bottleneck", "% pkts", 1, "%.2f", "ratio:direct:<=:2")
			row(sc, "drops", "  of the packets", "pkts", 1, "%.0f", "")
		}

	lw = 34; cw = 9
	printf "mxd benchmark: %s run, %s, %s s\n", mode, date, elapsed
	printf "machine: %s x %s, Linux %s, %s RAM, TCP %s; load average before: %s\n\n", nproc, cpu, kernel, mem, tcp_cc, load
	table(1, nmain, tunnels, (haveso ? "socat " : "") (haveya ? "yamux " : "") (havefl ? "floor " : "") (haveti && havess ? "mxd-tls/ssh" : ""))
	if (nrows > nmain) {
		printf "\nWAN: %s ms each way (%s ms round trip), drop-tail bottleneck queue of 1 BDP (%s); congestion control of both hosts named per link\n", \
		    wan_delay, 2 * wan_delay, wanem
		table(nmain + 1, nrows, wan_tunnels, wan_others)
	}
	printf "\n"
	printf "mxd-tls: %s\n", tls_note == "" ? "measured (column mxd-tls)" : tls_note
	printf "shaped link: %s\n", shaped_note != "" ? shaped_note : \
	    "tbf " tbf " on both veth ends, tunnel ends in two network namespaces"
	if (wan_note != "") printf "WAN: %s\n", wan_note
	else printf "WAN: the emulator (fresh per run) joins two network namespaces; per run the echo alone, then %s s beside a download on another channel after %s ms of warm-up; drops: the download's direction, over the whole run%s\n", \
	    wan_secs, wan_warm, wan_skipped != "" ? "; " wan_skipped : ""
	printf "idle: %s channels (socat: at most %s, it forks two processes per channel); RSS = VmRSS of all tunnel processes\n", idle_n, idle_socat
	printf "hol: 64-byte echo round trips, one per %s us, %s s per variant; bulk = a download on another channel of the same tunnel\n", hol_interval, hol_secs
	printf "cpu: user+sys of all tunnel processes (both ends) during bulk, per GiB moved\n"
	if (havefl) printf "floor: bench/floor.c, the least a relay pair with one link does (one frame per socket read, one writev per loop pass, no flow control); a reference, not a tunnel\n"
	printf "machine: /proc/stat of the whole machine during the run (load generator, targets and kernel included); busy 100 %% = every CPU\n"
	printf "of it the tunnel's own: the machine CPU beyond the direct column's (load generator and targets)\n"
	printf "at every CPU busy: the rate over the machine's busy share; its ratios divide mxd's by the other tunnel's measured rate (the most mxd can reach at its CPU cost)\n"
	if (reps > 1) printf "bulk, parallel, connrate, cpu: median of %s runs on each tunnel (all runs in the JSON file)\n", reps
	nf = split(fails, F, "\n")
	nfail = 0
	for (k = 1; k <= nf; k++) if (F[k] != "") { if (!nfail) printf "\nFAILURES:\n"; nfail++; printf "  %s\n", F[k] }

	if (json == "") exit 0
	printf "{\n" > json
	printf "  \"mode\": %s,\n  \"date\": %s,\n  \"elapsed_s\": %s,\n", jstr(mode), jstr(date), elapsed > json
	printf "  \"machine\": {\"nproc\": %s, \"cpu\": %s, \"kernel\": %s, \"mem\": %s, \"tcp_congestion_control\": %s, \"load_before\": %s},\n", \
	    nproc, jstr(cpu), jstr(kernel), jstr(mem), jstr(tcp_cc), jstr(load) > json
	printf "  \"params\": {\"bulk_bytes\": %s, \"parallel_conns\": %s, \"parallel_bytes\": %s, \"connrate_conns\": %s, \"connrate_inflight\": %s, \"hol_secs\": %s, \"hol_interval_us\": %s, \"idle_channels\": %s, \"idle_socat_max\": %s, \"shaped_tbf\": %s, \"shaped_rate_bytes_per_s\": %s},\n", \
	    bulk_bytes, par_conns, par_bytes, rate_count, rate_inflight, hol_secs, hol_interval, idle_n, idle_socat, jstr(tbf), link_bps > json
	printf "  \"tunnels\": [" > json
	for (k = 1; k <= nt; k++) printf "%s%s", sep(k > 1, ", "), jstr(T[k]) > json
	printf "],\n  \"mxd_tls\": %s,\n  \"shaped\": %s,\n", jstr(tls_note == "" ? "measured" : tls_note), \
	    jstr(shaped_note == "" ? "measured" : shaped_note) > json
	printf "  \"wan\": {\"note\": %s, \"emulator\": %s, \"delay_ms_each_way\": %s, \"congestion_controls\": %s, \"links_rate_mbit_loss_pct\": %s, \"secs\": %s, \"warm_ms\": %s},\n", \
	    jstr(wan_note == "" ? "measured" : wan_note " " wan_skipped), jstr(wanem), wan_delay + 0, jstr(wan_ccs), jstr(wan_links), wan_secs + 0, wan_warm + 0 > json
	printf "  \"results\": {" > json
	for (s = 1; s <= nsc; s++) {
		printf "%s\n    %s: {", sep(s > 1, ","), jstr(sclist[s]) > json
		first = 1
		for (k = 1; k <= nt; k++) {
			nkeys = 0
			for (key in V) {
				split(key, p, SUBSEP)
				if (p[1] == sclist[s] && p[2] == T[k]) K[++nkeys] = p[3]
			}
			if (!nkeys) continue
			printf "%s\n      %s: {", sep(!first, ","), jstr(T[k]) > json
			first = 0
			for (j = 1; j <= nkeys; j++) {
				printf "%s%s: %s", sep(j > 1, ", "), jstr(K[j]), V[sclist[s], T[k], K[j]] + 0 > json
				if ((sclist[s] SUBSEP T[k] SUBSEP K[j]) in MULTI) {
					runs = RUNS[sclist[s], T[k], K[j]]
					gsub(/ /, ", ", runs)
					printf ", %s: [%s]", jstr(K[j] "_runs"), runs > json
				}
			}
			printf "}" > json
		}
		printf "\n    }" > json
	}
	printf "\n  },\n  \"targets\": [" > json
	for (k = 1; k <= ntg; k++) printf "%s\n    %s", sep(k > 1, ","), TG[k] > json
	printf "\n  ],\n  \"failures\": [" > json
	j = 0
	for (k = 1; k <= nf; k++) if (F[k] != "") printf "%s%s", sep(j++, ", "), jstr(F[k]) > json
	printf "]\n}\n" > json
	close(json)
}
