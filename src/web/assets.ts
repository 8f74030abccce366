/**
 * The dashboard's only CSS and JavaScript, served by the dashboard itself (`/static/…`): no
 * bundler, no other host. The script makes pages marked `data-live` refresh themselves: every
 * few seconds it fetches the same URL and swaps the `<main>` element, without a reload.
 */
export const CSS = `
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
header{background:#1d2433;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:center}
header a{color:#cfd8ea;text-decoration:none}header a.on{color:#fff;font-weight:600}
header .brand{font-weight:700;color:#fff;margin-right:12px}
main{padding:16px}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:20px 0 8px}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #dde1e8;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.grid td.cell{min-width:92px;font-size:12px;padding:2px 4px}
.grid td.cell a{display:block;color:inherit;text-decoration:none}
.c-ok{background:#c9ecd1}.c-degraded{background:#fbe3a6}.c-invalid{background:#f5b5b5}
.c-failed{background:#e06b6b;color:#fff}.c-blocked{background:#d4c4ee}
.c-running{background:#b9d7f7}.c-waiting{background:#e3eefb}
.key span{display:inline-block;padding:1px 8px;margin-right:4px;border-radius:3px}
.bar{border-radius:3px;vertical-align:middle}.bar-bg{fill:#e6e9ef}.bar-fill{fill:#4a7bd0}.bar-hot{fill:#d04a4a}
.muted{color:#6b7385}.bad{color:#b42318;font-weight:600}.good{color:#217a3c}
.placeholder{border:2px dashed #b9c0cc;padding:16px;background:#fff;max-width:720px}
pre{background:#fff;border:1px solid #dde1e8;padding:6px;white-space:pre-wrap;max-width:1000px;margin:2px 0}
code.cmd{background:#1d2433;color:#e8ecf4;padding:3px 8px;border-radius:3px;display:inline-block;margin:2px 0}
form.filters{margin:0 0 12px;display:flex;gap:8px;align-items:center}
.pager a{margin-right:12px}
.charts{display:flex;flex-wrap:wrap;gap:10px}
svg.chart{background:#fff;border:1px solid #dde1e8}
.usage-account h3{margin:14px 0 4px;font-size:14px}
`;

export const JS = `
(function(){
  var main=document.querySelector('main[data-live]');
  if(!main)return;
  var every=Number(main.getAttribute('data-live'))||2000;
  function tick(){
    fetch(location.href,{headers:{'X-Remora-Live':'1'}}).then(function(r){return r.ok?r.text():null}).then(function(t){
      if(t===null)return;
      var doc=new DOMParser().parseFromString(t,'text/html');
      var next=doc.querySelector('main');
      if(next){main.innerHTML=next.innerHTML;main.setAttribute('data-refreshed',String(Date.now()));
        if(!next.hasAttribute('data-live'))return;}
      setTimeout(tick,every);
    }).catch(function(){setTimeout(tick,every*2)});
  }
  setTimeout(tick,every);
})();
`;
