// A payment: its amount, a live countdown to the end of its window, pay and cancel, and its
// state as the payment service reports it (PAYED, CANCEL, TIMEOUT).

import { api } from '../api.js';
import { session } from '../session.js';
import { errorBox, h, money, page, uuid } from '../ui.js';
import { logInFirst } from './account.js';

const STATES = {
  WAITING: 'Waiting for payment',
  PAYED: 'Paid. Thank you!',
  CANCEL: 'Cancelled. The books went back on the shelf.',
  TIMEOUT: 'Expired: it was not paid in time, and the books went back on the shelf.',
};

export async function paymentPage(payId) {
  const show = page();
  if (!session.user) {
    logInFirst(`#/payment/${payId}`);
    return;
  }
  let payment;
  try {
    payment = await api.payment(payId);
  } catch (error) {
    if (error.status === 401) return;
    show('Payment', h('h1', {}, 'Payment'), errorBox(error, () => paymentPage(payId)));
    return;
  }
  const deadline = Date.parse(payment.createTime) + Number(payment.expires);
  const state = h('p', { class: `state ${payment.payState}`, id: 'pay-state', 'aria-live': 'polite' }, STATES[payment.payState] || payment.payState);
  const countdown = h('p', { class: 'countdown', id: 'countdown' });
  const outcome = h('div', { 'aria-live': 'polite' });
  const actions = h('div', { class: 'actions' });
  let timer = null;
  let closedTicks = 0;

  const reload = async () => {
    clearInterval(timer);
    await paymentPage(payId);
  };
  const change = (target, label) =>
    h(
      'button',
      {
        type: 'button',
        class: target === 'CANCEL' ? 'secondary' : '',
        onclick: async (event) => {
          event.currentTarget.disabled = true;
          outcome.replaceChildren(h('p', { class: 'loading' }, target === 'PAYED' ? 'Paying…' : 'Cancelling…'));
          try {
            await api.changePayment(payId, target, uuid());
            await reload();
          } catch (error) {
            if (error.status === 401) return;
            outcome.replaceChildren(errorBox(error, reload));
            event.target.disabled = false;
          }
        },
      },
      label,
    );

  const tick = () => {
    if (!document.body.contains(countdown)) {
      clearInterval(timer);
      return;
    }
    const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    countdown.textContent = left > 0
      ? `Time left to pay: ${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`
      : 'The payment window has closed; checking with the payment service…';
    // The payment service times the payment out; read its verdict back.
    if (left === 0 && closedTicks++ % 2 === 0) {
      api.payment(payId).then((p) => {
        if (p.payState !== 'WAITING') reload();
      }, () => {});
    }
  };
  if (payment.payState === 'WAITING') {
    actions.append(change('PAYED', `Pay ${money(payment.totalPrice)}`), change('CANCEL', 'Cancel the order'));
  }

  show(
    'Payment',
    h('h1', {}, 'Payment'),
    h(
      'dl',
      { class: 'payment' },
      h('dt', {}, 'Amount'), h('dd', { id: 'pay-amount' }, money(payment.totalPrice)),
      h('dt', {}, 'Order'), h('dd', {}, h('code', {}, payment.payId)),
      h('dt', {}, 'Placed'), h('dd', {}, new Date(payment.createTime).toLocaleString()),
    ),
    state,
    countdown,
    actions,
    outcome,
    payment.payState === 'WAITING' ? null : h('p', {}, h('a', { href: '#/' }, 'Back to the catalogue')),
  );
  if (payment.payState === 'WAITING') {
    tick();
    timer = setInterval(tick, 1000);
  }
}
