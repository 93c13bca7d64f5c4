package providertest_test

func registryMutants() []mutant  { return nil }
func balancerMutants() []mutant  { return nil }
func schedulerMutants() []mutant { return nil }
