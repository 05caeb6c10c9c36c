// Batches the nft fake must refuse as the kernel does, shared by its unit test
// and the e2e test that sends the same batches to a real kernel. Each is given
// after the rendered table is loaded, behind a good statement that must not survive.

/** [what, the refused statement, what nft's error says] */
export const REFUSED_STATEMENTS: readonly (readonly [string, string, RegExp])[] = [
  [
    'deleting an element that is not there',
    'delete element inet dockfw guarded4 { 10.9.9.9 . tcp . 80 }',
    /No such file/,
  ],
  ['adding to a missing set', 'add element inet dockfw nosuch { 10.9.9.9 . tcp . 80 }', /No such file/],
  [
    'deleting from a missing set',
    'delete element inet dockfw nosuch { 10.9.9.9 . tcp . 80 }',
    /No such file/,
  ],
  [
    'an element with too few fields',
    'add element inet dockfw guarded4 { 10.9.9.9 . tcp }',
    /datatype mismatch/,
  ],
  [
    'an IPv6 address in an IPv4 set',
    'add element inet dockfw guarded4 { 2001:db8::1 . tcp . 80 }',
    /resolve/,
  ],
  ['an unknown protocol', 'add element inet dockfw guarded4 { 10.9.9.9 . icmpx . 80 }', /protocol/],
  ['a port out of range', 'add element inet dockfw guarded4 { 10.9.9.9 . tcp . 70000 }', /service/],
  ['an inverted range', 'add element inet dockfw guarded4 { 10.9.9.9 . tcp . 90-80 }', /negative size/],
  [
    'an element overlapping one held',
    'add element inet dockfw guarded4 { 172.17.0.2 . tcp . 80-90 }',
    /overlaps/,
  ],
  ['an interface covered by a wildcard', 'add element inet dockfw bridges { "dock*" }', /overlaps/],
  ['unknown syntax', 'frobnicate table inet dockfw', /syntax error/],
  ['a rule naming a missing set', 'add rule inet dockfw forward ip daddr @nosuch drop', /does not exist/],
  ['a rule jumping to a missing chain', 'add rule inet dockfw forward jump nosuch', /No such file/],
  [
    'a rule matching a key of another type than its set',
    'add rule inet dockfw forward ip daddr @guarded4 accept',
    /datatype mismatch/,
  ],
  ['a rule with an unknown word', 'add rule inet dockfw forward ip daddr frob drop', /syntax error/],
];

/** The good statement put before each refused one. */
export const GOOD_STATEMENT = 'add element inet dockfw guarded4 { 172.17.0.9 . tcp . 443 }';

/** Statements both must take (after the rendered table): an element already there, outside edits. */
export const ACCEPTED_STATEMENTS: readonly string[] = [
  'add element inet dockfw guarded4 { 172.17.0.2 . tcp . 80 }',
  // Overlaps the held element, but neither of its ends lies inside it: the kernel takes it.
  'add element inet dockfw guarded4 { 172.17.0.0/24 . tcp . 1-1000 }',
  'delete element inet dockfw guarded4 { 172.17.0.2 . tcp . 80 }',
  'add element inet dockfw bridges { "br-*" }',
  'flush chain inet dockfw forward',
  'add rule inet dockfw forward ip daddr . meta l4proto . th dport @guarded4 accept comment "mine"',
  'flush set inet dockfw allowed4',
];
