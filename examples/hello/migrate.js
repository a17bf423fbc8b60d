// The example app's migration step: run once per release before traffic moves to it. A real app
// would apply its schema changes here; this one reports what it would connect to and succeeds.
console.log(`migrating database on ${process.env.DATABASE_HOST ?? '(no DATABASE_HOST)'} as ${process.env.DATABASE_USER ?? '(no user)'}`);
console.log('no pending migrations');
