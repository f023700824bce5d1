"""The report's stylesheet: system fonts only, no external resources."""

CSS = """
:root { --fg:#111827; --muted:#6b7280; --line:#e5e7eb; --bg:#f9fafb; --err:#b91c1c; --warn:#b45309;
        --info:#1d4ed8; --good:#15803d; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#111827; color:white; padding:16px 32px; }
header h1 { margin:0; font-size:20px; } header p { margin:4px 0 0; color:#d1d5db; }
nav { position:sticky; top:0; z-index:10; background:white; border-bottom:1px solid var(--line);
      padding:8px 32px; display:flex; flex-wrap:wrap; gap:4px 14px; }
nav a { color:var(--info); text-decoration:none; font-size:13px; } nav a:hover { text-decoration:underline; }
main { max-width:1200px; margin:0 auto; padding:8px 32px 48px; }
section { background:white; border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin:16px 0; }
h2 { margin:0 0 12px; font-size:18px; } h3 { font-size:15px; margin:16px 0 8px; }
table { border-collapse:collapse; margin:8px 0; font-size:13px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left; vertical-align:top; }
th { background:#f3f4f6; font-weight:600; } td.num { text-align:right; font-variant-numeric:tabular-nums; }
table.kv th { background:none; color:var(--muted); font-weight:500; }
.headline { display:flex; flex-wrap:wrap; gap:8px; margin:10px 0 14px; }
.tile { border:1px solid var(--line); border-radius:6px; padding:6px 12px; min-width:110px; }
.tile .value { font-size:17px; font-weight:600; font-variant-numeric:tabular-nums; }
.tile .name { font-size:12px; color:var(--muted); }
.columns { display:flex; flex-wrap:wrap; gap:8px 40px; }
table.errors td:nth-child(2) { max-width:520px; white-space:pre-wrap; word-break:break-word; }
pre { background:#f3f4f6; padding:10px 12px; border-radius:6px; overflow:auto; font-size:12.5px; margin:6px 0; }
code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12.5px; }
.verdict { padding:12px 16px; border-radius:6px; margin-bottom:8px; font-size:15px; }
.verdict.bad { background:#fef2f2; border-left:5px solid var(--err); }
.verdict.warn { background:#fffbeb; border-left:5px solid var(--warn); }
.verdict.good { background:#f0fdf4; border-left:5px solid var(--good); }
.verdict span { color:var(--muted); }
.finding { border:1px solid var(--line); border-left:5px solid var(--info); border-radius:6px; padding:10px 14px;
           margin:10px 0; }
.finding.error { border-left-color:var(--err); } .finding.warning { border-left-color:var(--warn); }
.finding-head { display:flex; gap:10px; align-items:baseline; flex-wrap:wrap; }
.finding-head .title { font-weight:600; font-size:14.5px; } .fid { color:var(--muted); margin-left:auto; }
.badge { text-transform:uppercase; font-size:11px; font-weight:700; padding:1px 7px; border-radius:10px;
         color:white; background:var(--info); }
.badge.error { background:var(--err); } .badge.warning { background:var(--warn); }
.recommendation { margin:6px 0; }
.patch .label { font-size:12px; color:var(--muted); } .patch pre.yaml { display:inline-block; min-width:260px; }
.cli { font-size:12px; color:var(--muted); }
details summary { cursor:pointer; color:var(--muted); font-size:13px; }
.rows { color:var(--muted); font-size:12.5px; }
.note { color:var(--muted); margin-top:-6px; }
.not-run { color:var(--muted); font-style:italic; }
.plots { display:grid; grid-template-columns:repeat(auto-fit,minmax(480px,1fr)); gap:12px; }
.plot { width:100%; min-height:200px; }
footer { text-align:center; color:var(--muted); font-size:12px; padding:16px; }
"""
