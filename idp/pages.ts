/**
 * The IdP's HTML pages: sign-in, second factor, sign-out confirmation, errors. Chinese and
 * English (from ?lang= or Accept-Language, Chinese by default), accessible (labels bound to
 * inputs, lang attribute, error text in a role="alert" region, visible focus), no external
 * assets: inline CSS only, no scripts.
 */
export type Lang = 'zh' | 'en';

const TEXT = {
  zh: {
    title: '统一身份认证', signIn: '登录', login: '用户名或身份证号', password: '密码', submit: '登录', totp: '动态口令（6 位数字）',
    totpTitle: '二次验证', verify: '验证', toApp: '登录到', certificate: '使用数字证书登录', or: '或',
    badCredentials: '用户名或密码错误。', badTotp: '动态口令错误。', badCertificate: '无法使用该证书登录。',
    logoutTitle: '退出登录', logoutQuestion: '是否退出所有应用的登录？', yes: '是，退出', no: '否，保持登录',
    loggedOut: '您已退出登录。', error: '出错了', switchLang: 'English', switchCode: 'en',
    sessionsTitle: '我的登录会话', signedInAt: '登录时间', method: '登录方式', applications: '已登录的应用', expires: '有效期至', none: '无',
    thisSession: '当前浏览器', endSession: '退出此会话', endAll: '退出全部会话', sessionEnded: '所选会话已退出。',
    methodPassword: '密码', methodMfa: '密码 + 动态口令', methodCertificate: '数字证书', noSuchSession: '没有这个会话。',
    formExpired: '表单已过期，请刷新页面后重试。', stepUp: '该应用要求二次验证：请输入动态口令。',
    totpRestart: '动态口令错误次数过多，请重新输入密码登录。', methodCertificateMfa: '数字证书 + 动态口令',
  },
  en: {
    title: 'Single sign-on', signIn: 'Sign in', login: 'User name or citizen ID', password: 'Password', submit: 'Sign in', totp: 'One-time code (6 digits)',
    totpTitle: 'Second factor', verify: 'Verify', toApp: 'to', certificate: 'Sign in with my certificate', or: 'or',
    badCredentials: 'Wrong user name or password.', badTotp: 'Wrong one-time code.', badCertificate: 'This certificate cannot be used to sign in.',
    logoutTitle: 'Sign out', logoutQuestion: 'Sign out of every application?', yes: 'Yes, sign me out', no: 'No, stay signed in',
    loggedOut: 'You are signed out.', error: 'Something went wrong', switchLang: '中文', switchCode: 'zh',
    sessionsTitle: 'Your sessions', signedInAt: 'Signed in', method: 'Method', applications: 'Applications', expires: 'Expires', none: 'none',
    thisSession: 'this browser', endSession: 'Sign out this session', endAll: 'Sign out all sessions', sessionEnded: 'The session was signed out.',
    methodPassword: 'password', methodMfa: 'password + one-time code', methodCertificate: 'certificate', noSuchSession: 'No such session.',
    formExpired: 'This form has expired: reload the page and try again.', stepUp: 'This application requires a second factor: enter your one-time code.',
    totpRestart: 'Too many wrong one-time codes: sign in with your password again.', methodCertificateMfa: 'certificate + one-time code',
  },
} as const;

export type TextKey = keyof typeof TEXT.zh;

export function t(lang: Lang, key: TextKey): string {
  return TEXT[lang][key];
}

export function pickLang(query: string | undefined, acceptLanguage: string | undefined): Lang {
  if (query === 'en' || query === 'zh') return query;
  const first = (acceptLanguage ?? '').split(',')[0]?.trim().toLowerCase() ?? '';
  return first.startsWith('en') ? 'en' : 'zh';
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const CSS = `*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;background:#f3f4f6;color:#111827}
main{max-width:24rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.2)}
h1{font-size:1.5rem;margin:0 0 .25rem}p.app{margin:0 0 1.5rem;color:#374151}label{display:block;font-weight:600;margin:1rem 0 .25rem}
input{width:100%;padding:.6rem;font-size:1rem;border:1px solid #6b7280;border-radius:.25rem}
input:focus,button:focus,a:focus{outline:3px solid #2563eb;outline-offset:2px}
button{margin-top:1.5rem;width:100%;padding:.7rem;font-size:1rem;font-weight:600;color:#fff;background:#1d4ed8;border:0;border-radius:.25rem;cursor:pointer}
button.secondary{background:#4b5563}.alert{margin:1rem 0 0;padding:.75rem;border-radius:.25rem;background:#fee2e2;color:#7f1d1d;border:1px solid #b91c1c}
nav{text-align:right;font-size:.9rem}a{color:#1d4ed8}.or{text-align:center;margin:1rem 0 0;color:#4b5563}
ul.sessions{list-style:none;padding:0}ul.sessions li{border-top:1px solid #d1d5db;padding:.5rem 0 1rem}h2{font-size:1.1rem;margin:.5rem 0}
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem;margin:0}dt{font-weight:600}dd{margin:0}`;

export function page(lang: Lang, title: string, body: string, switchHref?: string): string {
  const nav = switchHref ? `<nav><a href="${escapeHtml(switchHref)}" lang="${t(lang, 'switchCode')}">${t(lang, 'switchLang')}</a></nav>` : '';
  return `<!DOCTYPE html><html lang="${lang === 'zh' ? 'zh-CN' : 'en'}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>${escapeHtml(title)}</title><style>${CSS}</style></head>
<body><main>${nav}${body}</main></body></html>`;
}

function alert(message: string | undefined): string {
  return `<div id="error" role="alert" aria-live="assertive">${message ? `<p class="alert">${escapeHtml(message)}</p>` : ''}</div>`;
}

export function loginPage(o: { lang: Lang; action: string; appName?: string; login?: string; error?: string; certificateAction?: string; switchHref?: string }): string {
  const { lang } = o;
  const described = o.error ? ' aria-describedby="error" aria-invalid="true"' : '';
  const cert = o.certificateAction
    ? `<p class="or">${t(lang, 'or')}</p><form method="post" action="${escapeHtml(o.certificateAction)}"><button type="submit" class="secondary">${t(lang, 'certificate')}</button></form>` : '';
  return page(lang, `${t(lang, 'signIn')} - ${t(lang, 'title')}`, `<h1>${t(lang, 'title')}</h1>
${o.appName ? `<p class="app">${t(lang, 'toApp')} ${escapeHtml(o.appName)}</p>` : ''}${alert(o.error)}
<form method="post" action="${escapeHtml(o.action)}" autocomplete="on">
<label for="login">${t(lang, 'login')}</label><input id="login" name="login" required autocomplete="username" autocapitalize="none" spellcheck="false" value="${escapeHtml(o.login ?? '')}"${described}>
<label for="password">${t(lang, 'password')}</label><input id="password" name="password" type="password" required autocomplete="current-password"${described}>
<button type="submit">${t(lang, 'submit')}</button></form>${cert}`, o.switchHref);
}

export function totpPage(o: { lang: Lang; action: string; error?: string; note?: string }): string {
  const { lang } = o;
  return page(lang, t(lang, 'totpTitle'), `<h1>${t(lang, 'totpTitle')}</h1>${o.note ? `<p>${escapeHtml(o.note)}</p>` : ''}${alert(o.error)}
<form method="post" action="${escapeHtml(o.action)}"><label for="code">${t(lang, 'totp')}</label>
<input id="code" name="code" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" required autocomplete="one-time-code"${o.error ? ' aria-describedby="error" aria-invalid="true"' : ''}>
<button type="submit">${t(lang, 'verify')}</button></form>`);
}

export function logoutPage(lang: Lang, form: string): string {
  return page(lang, t(lang, 'logoutTitle'), `<h1>${t(lang, 'logoutTitle')}</h1><p>${t(lang, 'logoutQuestion')}</p>${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">${t(lang, 'yes')}</button>
<button type="submit" form="op.logoutForm" class="secondary">${t(lang, 'no')}</button>`);
}

export function messagePage(lang: Lang, title: string, message: string): string {
  return page(lang, title, `<h1>${escapeHtml(title)}</h1><p role="status">${escapeHtml(message)}</p>`);
}

export interface SessionRow {
  uid: string;
  signedInAt?: Date;
  method: string;
  applications: string[];
  expiresAt: Date;
  current: boolean;
}

/** The user's own sessions, each with a sign-out form (POST, CSRF token) and one for all of them. */
export function sessionsPage(o: { lang: Lang; sessions: SessionRow[]; action: string; csrf: string; notice?: string; switchHref?: string }): string {
  const { lang } = o;
  const when = new Intl.DateTimeFormat(lang === 'zh' ? 'zh-CN' : 'en-GB', { dateStyle: 'medium', timeStyle: 'short' });
  const time = (d: Date) => `<time datetime="${d.toISOString()}">${escapeHtml(when.format(d))}</time>`;
  const form = (fields: string, label: string, describedBy?: string) => `<form method="post" action="${escapeHtml(o.action)}"><input type="hidden" name="csrf" value="${escapeHtml(o.csrf)}">${fields}
<button type="submit" class="secondary"${describedBy ? ` aria-describedby="${describedBy}"` : ''}>${label}</button></form>`;
  const rows = o.sessions.map((s, i) => `<li aria-labelledby="s${i}"><h2 id="s${i}">${s.signedInAt ? time(s.signedInAt) : escapeHtml(s.uid)}${s.current ? ` <strong>(${t(lang, 'thisSession')})</strong>` : ''}</h2>
<dl><dt>${t(lang, 'method')}</dt><dd>${escapeHtml(s.method)}</dd><dt>${t(lang, 'applications')}</dt><dd>${s.applications.length ? s.applications.map(escapeHtml).join(', ') : t(lang, 'none')}</dd>
<dt>${t(lang, 'expires')}</dt><dd>${time(s.expiresAt)}</dd></dl>
${form(`<input type="hidden" name="uid" value="${escapeHtml(s.uid)}">`, t(lang, 'endSession'), `s${i}`)}</li>`).join('\n');
  return page(lang, t(lang, 'sessionsTitle'), `<h1>${t(lang, 'sessionsTitle')}</h1>
<div role="status">${o.notice ? `<p>${escapeHtml(o.notice)}</p>` : ''}</div>
<ul class="sessions">${rows}</ul>${form('<input type="hidden" name="all" value="1">', t(lang, 'endAll'))}`, o.switchHref);
}
