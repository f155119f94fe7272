// Connection quality from RTCPeerConnection.getStats: packet loss and
// round-trip time, summed over the publisher and subscriber connections.
//
//	good  loss < 2 %  and RTT < 250 ms
//	fair  loss < 8 %  and RTT < 500 ms
//	poor  otherwise
//	unknown  before there is anything to measure

export const GOOD = { loss: 0.02, rtt: 0.25 };
export const FAIR = { loss: 0.08, rtt: 0.5 };

/** Classifies a loss fraction (0..1) and an RTT in seconds. */
export function classify(loss, rtt) {
  if (loss == null && rtt == null) return 'unknown';
  const l = loss ?? 0;
  const r = rtt ?? 0;
  if (l < GOOD.loss && r < GOOD.rtt) return 'good';
  if (l < FAIR.loss && r < FAIR.rtt) return 'fair';
  return 'poor';
}

/**
 * Meter samples the PeerConnections and keeps the counters of the last
 * sample, so that loss is measured over the interval, not since the start.
 */
export class Meter {
  constructor() {
    this.prev = { received: 0, lost: 0 };
    this.last = { level: 'unknown', loss: null, rtt: null };
  }

  /** Samples pub and sub (either may be null) and returns the new reading. */
  async sample(pub, sub) {
    let received = 0;
    let lost = 0;
    let rtts = [];
    let remoteLoss = [];
    for (const pc of [pub, sub]) {
      if (!pc || pc.connectionState === 'closed') continue;
      let report;
      try {
        report = await pc.getStats();
      } catch {
        continue;
      }
      let selectedPair = '';
      report.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) selectedPair = s.selectedCandidatePairId;
      });
      report.forEach((s) => {
        switch (s.type) {
          case 'inbound-rtp':
            received += s.packetsReceived || 0;
            lost += Math.max(0, s.packetsLost || 0);
            break;
          case 'remote-inbound-rtp':
            if (typeof s.fractionLost === 'number') remoteLoss.push(s.fractionLost);
            if (typeof s.roundTripTime === 'number') rtts.push(s.roundTripTime);
            break;
          case 'candidate-pair':
            if ((selectedPair ? s.id === selectedPair : s.nominated && s.state === 'succeeded') &&
                typeof s.currentRoundTripTime === 'number') {
              rtts.push(s.currentRoundTripTime);
            }
            break;
        }
      });
    }
    const dr = received - this.prev.received;
    const dl = lost - this.prev.lost;
    this.prev = { received, lost };
    let loss = null;
    if (dr + dl > 0) loss = dl / (dr + dl);
    if (remoteLoss.length) loss = Math.max(loss ?? 0, ...remoteLoss);
    const rtt = rtts.length ? Math.max(...rtts) : null;
    this.last = { level: classify(loss, rtt), loss, rtt };
    return this.last;
  }
}
